//! A test server for the MCP conformance suite's server scenarios
//! (`@modelcontextprotocol/conformance`): the tools, resources and prompts
//! those scenarios call, written from the names the suite uses.
//!
//! ```sh
//! rig-conformance-server            # behind mcp-oauth2 (MCP_OAUTH2_* as for the reference server)
//! rig-conformance-server --no-auth  # the same server on plain rmcp, no auth layer
//! ```
//!
//! Binds `MCP_OAUTH2_BIND`, serves `/mcp`, prints `listening on ADDR`. The
//! rig runs the suite against both modes and requires equal results: the
//! auth layer must not change what an MCP client sees.
//!
//! Not covered (those scenarios fail the same way in both modes): sampling,
//! elicitation, SSE polling and resumption.

use std::sync::Arc;
use std::time::Duration;

use mcp_oauth2::{AuthConfigBuilder, McpServer};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::*;
use rmcp::service::{Peer, RequestContext};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler, tool, tool_handler, tool_router};
use serde::Deserialize;

/// A 1x1 transparent PNG.
const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";
/// A 44-byte WAV header with no samples.
const WAV: &str = "UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQAAAAA=";

#[derive(Clone)]
struct Everything {
    tool_router: ToolRouter<Self>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct Empty {}

#[tool_router]
impl Everything {
    fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }

    #[tool(description = "Returns a simple text content")]
    async fn test_simple_text(&self) -> Result<CallToolResult, ErrorData> {
        Ok(CallToolResult::success(vec![Content::text(
            "This is a simple text response for testing.",
        )]))
    }

    #[tool(description = "Returns an image content")]
    async fn test_image_content(&self) -> Result<CallToolResult, ErrorData> {
        Ok(CallToolResult::success(vec![Content::image(PNG, "image/png")]))
    }

    #[tool(description = "Returns an audio content")]
    async fn test_audio_content(&self) -> Result<CallToolResult, ErrorData> {
        Ok(CallToolResult::success(vec![Content::audio(WAV, "audio/wav")]))
    }

    #[tool(description = "Returns an embedded resource")]
    async fn test_embedded_resource(&self) -> Result<CallToolResult, ErrorData> {
        Ok(CallToolResult::success(vec![Content::resource(
            ResourceContents::text("This is an embedded resource content.", "test://embedded-resource")
                .with_mime_type("text/plain"),
        )]))
    }

    #[tool(description = "Returns text, image and resource content")]
    async fn test_multiple_content_types(&self) -> Result<CallToolResult, ErrorData> {
        Ok(CallToolResult::success(vec![
            Content::text("Multiple content types test:"),
            Content::image(PNG, "image/png"),
            Content::resource(
                ResourceContents::text(
                    r#"{"test":"data","value":123}"#,
                    "test://mixed-content-resource",
                )
                .with_mime_type("application/json"),
            ),
        ]))
    }

    #[tool(description = "Sends log notifications while running")]
    async fn test_tool_with_logging(&self, peer: Peer<RoleServer>) -> Result<CallToolResult, ErrorData> {
        for (i, message) in ["Tool execution started", "Tool processing data", "Tool execution completed"]
            .into_iter()
            .enumerate()
        {
            let _ = peer
                .notify_logging_message(
                    LoggingMessageNotificationParam::new(LoggingLevel::Info, serde_json::json!(message))
                        .with_logger("conformance"),
                )
                .await;
            if i < 2 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(CallToolResult::success(vec![Content::text(
            "Tool with logging executed successfully",
        )]))
    }

    #[tool(description = "Sends progress notifications while running")]
    async fn test_tool_with_progress(
        &self,
        meta: RequestMetaObject,
        peer: Peer<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        if let Some(token) = meta.get_progress_token() {
            for step in [0.0, 50.0, 100.0] {
                let _ = peer
                    .notify_progress(
                        ProgressNotificationParam::new(token.clone(), step)
                            .with_total(100.0)
                            .with_message(format!("Completed step {step}")),
                    )
                    .await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(CallToolResult::success(vec![Content::text(
            "Tool with progress executed successfully",
        )]))
    }

    #[tool(description = "Always fails with isError")]
    async fn test_error_handling(&self) -> Result<CallToolResult, ErrorData> {
        Ok(CallToolResult::error(vec![Content::text(
            "This tool intentionally returns an error for testing",
        )]))
    }
}

fn static_resources() -> Vec<Resource> {
    vec![
        RawResource::new("test://static-text", "Static Text Resource")
            .with_mime_type("text/plain")
            .no_annotation(),
        RawResource::new("test://static-binary", "Static Binary Resource")
            .with_mime_type("image/png")
            .no_annotation(),
    ]
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Everything {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .enable_resources_subscribe()
                .enable_prompts()
                .enable_logging()
                .enable_completions()
                .build(),
        )
        .with_server_info(Implementation::new("rig-conformance-server", "0.0.0"))
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(static_resources()))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(vec![
            RawResourceTemplate::new("test://template/{id}/data", "Resource Template")
                .with_mime_type("application/json")
                .no_annotation(),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let uri = request.uri.as_str();
        let contents = match uri {
            "test://static-text" => ResourceContents::text("This is the content of the static text resource.", uri),
            "test://static-binary" => ResourceContents::blob(PNG, uri).with_mime_type("image/png"),
            "test://watched-resource" => ResourceContents::text("Watched resource content", uri),
            _ => match uri
                .strip_prefix("test://template/")
                .and_then(|rest| rest.strip_suffix("/data"))
            {
                Some(id) => ResourceContents::text(
                    serde_json::json!({ "id": id, "templateTest": true, "data": format!("Data for ID: {id}") })
                        .to_string(),
                    uri,
                )
                .with_mime_type("application/json"),
                None => {
                    return Err(ErrorData::resource_not_found(
                        format!("no resource {uri}"),
                        None,
                    ));
                }
            },
        };
        Ok(ReadResourceResult::new(vec![contents]).into())
    }

    async fn subscribe(
        &self,
        _request: SubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        Ok(())
    }

    async fn unsubscribe(
        &self,
        _request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        Ok(())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let arg = |name: &str| PromptArgument::new(name).with_required(true);
        Ok(ListPromptsResult::with_all_items(vec![
            Prompt::new("test_simple_prompt", Some("A simple prompt without arguments"), None),
            Prompt::new(
                "test_prompt_with_arguments",
                Some("A prompt with arguments"),
                Some(vec![arg("arg1"), arg("arg2")]),
            ),
            Prompt::new(
                "test_prompt_with_embedded_resource",
                Some("A prompt with an embedded resource"),
                Some(vec![arg("resourceUri")]),
            ),
            Prompt::new("test_prompt_with_image", Some("A prompt with an image"), None),
        ]))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let args = request.arguments.unwrap_or_default();
        let arg = |name: &str| {
            args.get(name)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        let messages = match request.name.as_str() {
            "test_simple_prompt" => vec![PromptMessage::new_text(
                Role::User,
                "This is a simple prompt for testing.",
            )],
            "test_prompt_with_arguments" => vec![PromptMessage::new_text(
                Role::User,
                format!("Prompt with arguments: arg1='{}', arg2='{}'", arg("arg1"), arg("arg2")),
            )],
            "test_prompt_with_embedded_resource" => vec![
                PromptMessage::new_resource(
                    Role::User,
                    arg("resourceUri"),
                    Some("text/plain".to_owned()),
                    Some("Embedded resource content for testing.".to_owned()),
                    None,
                    None,
                    None,
                ),
                PromptMessage::new_text(Role::User, "Please process the embedded resource above."),
            ],
            "test_prompt_with_image" => vec![
                PromptMessage::new_image(Role::User, PNG, "image/png", None, None)?,
                PromptMessage::new_text(Role::User, "Please analyze the image above."),
            ],
            other => {
                return Err(ErrorData::invalid_params(format!("no prompt {other}"), None));
            }
        };
        Ok(GetPromptResult::new(messages).into())
    }

    async fn complete(
        &self,
        _request: CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        Ok(CompleteResult::new(
            CompletionInfo::new(vec!["paris".to_owned(), "park".to_owned(), "party".to_owned()])
                .map_err(|e| ErrorData::internal_error(e, None))?,
        ))
    }

    async fn set_level(
        &self,
        _request: SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let no_auth = std::env::args().any(|a| a == "--no-auth");
    let bind = std::env::var("MCP_OAUTH2_BIND").unwrap_or_else(|_| "127.0.0.1:0".to_owned());
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    let addr = listener.local_addr()?;
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    if no_auth {
        // Plain rmcp: the same StreamableHttpService configuration McpServer
        // starts from, with no layer in front.
        let service = StreamableHttpService::new(
            || Ok(Everything::new()),
            Arc::new(LocalSessionManager::default()),
            StreamableHttpServerConfig::default(),
        );
        let app = axum::Router::new().nest_service("/mcp", service);
        println!("listening on {addr}");
        axum::serve(listener, app).with_graceful_shutdown(shutdown).await?;
    } else {
        let config = AuthConfigBuilder::from_env()?.build()?;
        println!("listening on {addr}");
        McpServer::builder()
            .auth(config)
            .path("/mcp")
            .service(|| Ok(Everything::new()))
            .build()?
            .serve_with_shutdown(listener, shutdown)
            .await?;
    }
    Ok(())
}
