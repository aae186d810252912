//! Issue 13: the response mode `McpServer` serves by default. A stateless
//! (2026-07-28) call answered with one message gets `application/json`;
//! a call whose handler sends a progress notification first still gets an
//! SSE stream carrying the notification and then the answer, and the
//! escape hatches build and serve.
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

use mcp_oauth2::McpServer;
use mcp_oauth2::testing::TestIssuer;
use rmcp::ErrorData;
use rmcp::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock,
    ProgressNotificationParam, ServerCapabilities, ServerConfig,
};
use rmcp::service::{RequestContext, RoleServer};

/// Answers every tool call with "done"; the tool `progress` first reports
/// half its progress to the caller's progress token.
#[derive(Clone)]
struct Reporter;

impl ServerHandler for Reporter {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if request.name == "progress"
            && let Some(token) = context.meta.get_progress_token()
        {
            context
                .peer
                .notify_progress(ProgressNotificationParam::new(token, 50.0).with_total(100.0))
                .await
                .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        }
        Ok(CallToolResult::success(vec![ContentBlock::text("done")]).into())
    }
}

struct Running {
    issuer: TestIssuer,
    resource: String,
    ct: tokio_util::sync::CancellationToken,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.ct.cancel();
    }
}

async fn start(tcp_nodelay: bool) -> Running {
    let issuer = TestIssuer::start().await.expect("issuer");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let resource = format!("http://{}/mcp", listener.local_addr().expect("addr"));
    let config = mcp_oauth2::AuthConfig::builder()
        .issuer(issuer.issuer())
        .resource(&resource)
        .allow_insecure_http_for_loopback(true)
        .build()
        .expect("config");
    let server = McpServer::builder()
        .auth(config)
        .tcp_nodelay(tcp_nodelay)
        .service(|| Ok(Reporter))
        .build()
        .expect("server");
    let ct = server.cancellation_token();
    tokio::spawn(server.serve_with_shutdown(listener, std::future::pending()));
    Running {
        issuer,
        resource,
        ct,
    }
}

fn call(tool: &str, progress_token: Option<&str>) -> String {
    let mut meta = serde_json::json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    if let Some(token) = progress_token {
        meta["progressToken"] = token.into();
    }
    serde_json::json!({
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": tool, "arguments": {}, "_meta": meta},
    })
    .to_string()
}

async fn post(s: &Running, tool: &str, progress_token: Option<&str>) -> (String, String) {
    let token = s.issuer.token().audience(&s.resource).sign();
    let resp = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        reqwest::Client::new()
            .post(&s.resource)
            .bearer_auth(token)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", tool)
            .body(call(tool, progress_token))
            .send(),
    )
    .await
    .expect("in time")
    .expect("response");
    assert_eq!(resp.status(), 200);
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (content_type, resp.text().await.expect("body"))
}

#[tokio::test]
async fn a_single_message_answer_is_json_by_default() {
    let s = start(true).await;
    let (content_type, body) = post(&s, "quick", None).await;
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let answer: serde_json::Value = serde_json::from_str(&body).expect("one JSON message");
    assert_eq!(answer["id"], 7);
    assert_eq!(answer["result"]["content"][0]["text"], "done");
}

#[tokio::test]
async fn progress_notifications_still_stream_by_default() {
    let s = start(true).await;
    let (content_type, body) = post(&s, "progress", Some("p-1")).await;
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let messages: Vec<serde_json::Value> = body
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(str::trim)
        .filter(|data| !data.is_empty())
        .map(|data| serde_json::from_str(data).expect("JSON event"))
        .collect();
    assert_eq!(messages.len(), 2, "{body}");
    assert_eq!(messages[0]["method"], "notifications/progress");
    assert_eq!(messages[0]["params"]["progressToken"], "p-1");
    assert_eq!(messages[1]["id"], 7);
    assert_eq!(messages[1]["result"]["content"][0]["text"], "done");
}

/// The escape hatch (`tcp_nodelay(false)`) changes only the socket option.
#[tokio::test]
async fn the_nodelay_escape_hatch_still_serves() {
    let s = start(false).await;
    let (content_type, _) = post(&s, "quick", None).await;
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
}
