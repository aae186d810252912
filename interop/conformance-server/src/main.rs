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
//! Covers every server scenario of the suite version in
//! interop/package-lock.json (`--suite all`); a scenario it does not cover
//! fails the same way in both modes and shows up in logs/CONFORMANCE.md.

// Logging is deprecated by SEP-2577, but the suite still tests it.
#![allow(deprecated)]

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

/// Arguments of `test_sampling`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct SamplingArgs {
    /// The prompt to send to the LLM.
    prompt: String,
}

/// Arguments of `test_elicitation`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct ElicitationArgs {
    /// The message to show the user.
    message: String,
}

/// The input schema the json-schema-2020-12 scenario expects to see intact.
fn json_schema_2020_12() -> Arc<JsonObject> {
    let schema = serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {
            "address": {
                "$anchor": "addressDef",
                "type": "object",
                "properties": { "street": { "type": "string" }, "city": { "type": "string" } }
            }
        },
        "properties": {
            "name": { "type": "string" },
            "address": { "$ref": "#/$defs/address" },
            "contactMethod": { "type": "string", "enum": ["phone", "email"] },
            "phone": { "type": "string" },
            "email": { "type": "string" }
        },
        "allOf": [{ "anyOf": [{ "required": ["phone"] }, { "required": ["email"] }] }],
        "if": { "properties": { "contactMethod": { "const": "phone" } }, "required": ["contactMethod"] },
        "then": { "required": ["phone"] },
        "else": { "required": ["email"] },
        "additionalProperties": false
    });
    match schema {
        serde_json::Value::Object(map) => Arc::new(map),
        _ => Arc::new(JsonObject::new()),
    }
}

/// Sends `elicitation/create` with a form schema given as JSON; returns
/// `action=..., content=...`.
async fn elicit(
    peer: &Peer<RoleServer>,
    message: &str,
    schema: serde_json::Value,
) -> Result<String, ErrorData> {
    let params: ElicitRequestParams = serde_json::from_value(serde_json::json!({
        "mode": "form",
        "message": message,
        "requestedSchema": schema,
    }))
    .map_err(|e| ErrorData::internal_error(format!("elicitation schema: {e}"), None))?;
    let result = peer
        .create_elicitation(params)
        .await
        .map_err(|e| ErrorData::internal_error(format!("elicitation failed: {e}"), None))?;
    let action = serde_json::to_value(&result.action).unwrap_or_default();
    Ok(format!(
        "action={}, content={}",
        action.as_str().unwrap_or("?"),
        result.content.unwrap_or(serde_json::Value::Null)
    ))
}

#[derive(Clone)]
struct Everything {
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Everything {
    fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }

    #[tool(description = "Returns a simple text content")]
    async fn test_simple_text(&self) -> Result<CallToolResult, ErrorData> {
        Ok(CallToolResult::success(vec![ContentBlock::text(
            "This is a simple text response for testing.",
        )]))
    }

    #[tool(description = "Returns an image content")]
    async fn test_image_content(&self) -> Result<CallToolResult, ErrorData> {
        Ok(CallToolResult::success(vec![ContentBlock::image(PNG, "image/png")]))
    }

    #[tool(description = "Returns an audio content")]
    async fn test_audio_content(&self) -> Result<CallToolResult, ErrorData> {
        Ok(CallToolResult::success(vec![ContentBlock::audio(WAV, "audio/wav")]))
    }

    #[tool(description = "Returns an embedded resource")]
    async fn test_embedded_resource(&self) -> Result<CallToolResult, ErrorData> {
        Ok(CallToolResult::success(vec![ContentBlock::resource(
            ResourceContents::text("This is an embedded resource content.", "test://embedded-resource")
                .with_mime_type("text/plain"),
        )]))
    }

    #[tool(description = "Returns text, image and resource content")]
    async fn test_multiple_content_types(&self) -> Result<CallToolResult, ErrorData> {
        Ok(CallToolResult::success(vec![
            ContentBlock::text("Multiple content types test:"),
            ContentBlock::image(PNG, "image/png"),
            ContentBlock::resource(
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
        Ok(CallToolResult::success(vec![ContentBlock::text(
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
        Ok(CallToolResult::success(vec![ContentBlock::text(
            "Tool with progress executed successfully",
        )]))
    }

    #[tool(description = "Asks the client to sample an LLM (sampling/createMessage)")]
    async fn test_sampling(
        &self,
        peer: Peer<RoleServer>,
        Parameters(SamplingArgs { prompt }): Parameters<SamplingArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let result = peer
            .create_message(CreateMessageRequestParams::new(
                vec![SamplingMessage::new(Role::User, SamplingMessageContentBlock::text(prompt))],
                100,
            ))
            .await
            .map_err(|e| ErrorData::internal_error(format!("sampling failed: {e}"), None))?;
        let text = serde_json::to_value(&result.message.content)
            .ok()
            .and_then(|v| v.get("text").and_then(|t| t.as_str()).map(str::to_owned))
            .unwrap_or_default();
        Ok(CallToolResult::success(vec![ContentBlock::text(format!(
            "LLM response: {text}"
        ))]))
    }

    #[tool(description = "Asks the user for a username and an email (elicitation/create)")]
    async fn test_elicitation(
        &self,
        peer: Peer<RoleServer>,
        Parameters(ElicitationArgs { message }): Parameters<ElicitationArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let schema = serde_json::json!({
            "type": "object",
            "properties": {
                "username": { "type": "string", "description": "User's response" },
                "email": { "type": "string", "description": "User's email address" }
            },
            "required": ["username", "email"]
        });
        let answer = elicit(&peer, &message, schema).await?;
        Ok(CallToolResult::success(vec![ContentBlock::text(format!(
            "User response: {answer}"
        ))]))
    }

    #[tool(description = "Elicitation with a default for every primitive type (SEP-1034)")]
    async fn test_elicitation_sep1034_defaults(
        &self,
        peer: Peer<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let schema = serde_json::json!({
            "type": "object",
            "properties": {
                "name": { "type": "string", "default": "John Doe" },
                "age": { "type": "integer", "default": 30 },
                "score": { "type": "number", "default": 95.5 },
                "status": { "type": "string", "enum": ["active", "inactive", "pending"], "default": "active" },
                "verified": { "type": "boolean", "default": true }
            }
        });
        let answer = elicit(&peer, "Please review your profile", schema).await?;
        Ok(CallToolResult::success(vec![ContentBlock::text(format!(
            "Elicitation completed: {answer}"
        ))]))
    }

    #[tool(description = "Elicitation with every enum form (SEP-1330)")]
    async fn test_elicitation_sep1330_enums(
        &self,
        peer: Peer<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let schema = serde_json::json!({
            "type": "object",
            "properties": {
                "untitledSingle": { "type": "string", "enum": ["option1", "option2", "option3"] },
                "titledSingle": { "type": "string", "oneOf": [
                    { "const": "value1", "title": "First Option" },
                    { "const": "value2", "title": "Second Option" },
                    { "const": "value3", "title": "Third Option" }
                ] },
                "legacyEnum": { "type": "string", "enum": ["opt1", "opt2", "opt3"],
                    "enumNames": ["Option One", "Option Two", "Option Three"] },
                "untitledMulti": { "type": "array", "items": { "type": "string", "enum": ["option1", "option2", "option3"] } },
                "titledMulti": { "type": "array", "items": { "anyOf": [
                    { "const": "value1", "title": "First Choice" },
                    { "const": "value2", "title": "Second Choice" },
                    { "const": "value3", "title": "Third Choice" }
                ] } }
            }
        });
        let answer = elicit(&peer, "Please choose", schema).await?;
        Ok(CallToolResult::success(vec![ContentBlock::text(format!(
            "Elicitation completed: {answer}"
        ))]))
    }

    #[tool(
        description = "Has a JSON Schema 2020-12 input schema ($schema, $defs, composition, conditionals)",
        input_schema = json_schema_2020_12()
    )]
    async fn json_schema_2020_12_tool(&self) -> Result<CallToolResult, ErrorData> {
        Ok(CallToolResult::success(vec![ContentBlock::text("ok")]))
    }

    #[tool(description = "Always fails with isError")]
    async fn test_error_handling(&self) -> Result<CallToolResult, ErrorData> {
        Ok(CallToolResult::error(vec![ContentBlock::text(
            "This tool intentionally returns an error for testing",
        )]))
    }
}

fn static_resources() -> Vec<Resource> {
    vec![
        Resource::new("test://static-text", "Static Text Resource").with_mime_type("text/plain"),
        Resource::new("test://static-binary", "Static Binary Resource").with_mime_type("image/png"),
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
            ResourceTemplate::new("test://template/{id}/data", "Resource Template")
                .with_mime_type("application/json"),
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
                PromptMessage::new(Role::User, ContentBlock::image(PNG, "image/png")),
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
