//! MCP tasks (SEP-2663, rmcp 3.11) are bound to the principal that created
//! them: another principal, or the owner with a token that no longer
//! carries the creating call's scopes, cannot read, update or cancel them.
//! A real rmcp server sharing one `TaskManager` across its sessions (as a
//! stateless 2026-07-28 server must) behind `McpServer`, over loopback HTTP.
// Test code: a panic here is a failed run.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use std::sync::Arc;

use mcp_oauth2::McpServer;
use mcp_oauth2::store::{RedisStore, SharedStore};
use mcp_oauth2::testing::TestIssuer;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CancelTaskParams, ContentBlock,
    CreateTaskResult, GetTaskParams, GetTaskResult, ServerCapabilities, ServerConfig,
    UpdateTaskParams,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::task_manager::{TaskManager, TaskOptions};
use rmcp::{ErrorData, ServerHandler};
use serde_json::{Value, json};
use support::fixture::bounded;
use support::loopback::bind_with_config;
use support::redis::RedisServer;
use tokio_util::sync::CancellationToken;

/// Runs every `tools/call` as a task answering its caller's subject.
#[derive(Clone)]
struct TaskServer {
    tasks: TaskManager,
}

impl ServerHandler for TaskServer {
    // Every name is a tool here (every `tools/call` runs as a task), so
    // the scope rule for `report` names one (`McpServer::build` asks).
    fn get_tool(&self, name: &str) -> Option<rmcp::model::Tool> {
        Some(rmcp::model::Tool::new(
            name.to_owned(),
            "runs as a task",
            Arc::new(serde_json::Map::from_iter([(
                "type".to_owned(),
                json!("object"),
            )])),
        ))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let subject = mcp_oauth2::RequestContextExt::auth(&context)?
            .subject()
            .to_owned();
        let name = request.name.to_string();
        if name == "chatty" {
            // A notification first: a stateless answer then comes as an
            // SSE stream.
            #[allow(deprecated)]
            let message = rmcp::model::LoggingMessageNotificationParam::new(
                rmcp::model::LoggingLevel::Info,
                json!("starting"),
            );
            #[allow(deprecated)]
            let _ = context.peer.notify_logging_message(message).await;
        }
        // `late`: the task learns it needs `notes:admin`, asks, and carries
        // on (a handler bug the layer promises to contain).
        let auth = mcp_oauth2::RequestContextExt::auth(&context)?.clone();
        let task = self.tasks.spawn(TaskOptions::new(), move |_ctx| {
            Box::pin(async move {
                if name == "late" {
                    // After the creating call's answer has left.
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    let _ignored = auth.require_scopes(["notes:admin"]);
                }
                Ok(CallToolResult::success(vec![ContentBlock::text(format!(
                    "{name}: secret of {subject}"
                ))]))
            })
        });
        Ok(CallToolResponse::Task(CreateTaskResult::new(task)))
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, ErrorData> {
        Ok(GetTaskResult::new(self.tasks.get_task(&request.task_id)?))
    }

    async fn update_task(
        &self,
        request: UpdateTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.tasks
            .update_task(&request.task_id, request.input_responses)
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.tasks.cancel_task(&request.task_id)
    }

    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tasks()
                .build(),
        )
    }
}

struct Tasks {
    issuer: Arc<TestIssuer>,
    resource: String,
    metrics: mcp_oauth2::Metrics,
    ct: CancellationToken,
}

impl Drop for Tasks {
    fn drop(&mut self) {
        self.ct.cancel();
    }
}

impl Tasks {
    async fn start() -> Self {
        let issuer = Arc::new(TestIssuer::start().await.expect("issuer"));
        Self::replica(issuer, None, TaskManager::new()).await
    }

    /// A server on `issuer` keeping task owners in `store` (else its own
    /// memory), its handlers serving `tasks`.
    async fn replica(
        issuer: Arc<TestIssuer>,
        store: Option<Arc<dyn SharedStore>>,
        tasks: TaskManager,
    ) -> Self {
        let (listener, resource, config) = bind_with_config(&issuer, |b| {
            let b = b
                .scopes_supported(["notes:read", "notes:write"])
                .tool_scopes("report", ["notes:write"])
                .scope_implies("notes:write", ["notes:read"]);
            match store {
                Some(store) => b.shared_store(store),
                None => b,
            }
        })
        .await;
        let server = McpServer::builder()
            .auth(config)
            .service(move || {
                Ok(TaskServer {
                    tasks: tasks.clone(),
                })
            })
            .build()
            .expect("server");
        let ct = server.cancellation_token();
        let metrics = server.metrics();
        tokio::spawn(server.serve_with_shutdown(listener, std::future::pending()));
        Self {
            issuer,
            resource,
            metrics,
            ct,
        }
    }

    fn token(&self, subject: &str, scopes: &[&str]) -> String {
        self.issuer
            .token()
            .subject(subject)
            .audience(&self.resource)
            .scopes(scopes.iter().copied())
            .sign()
    }

    /// POSTs `body` (a raw JSON-RPC text) as a stateless 2026-07-28
    /// request from a client that declares tasks.
    async fn post_raw(
        &self,
        token: &str,
        method: &str,
        name: &str,
        body: &str,
    ) -> reqwest::Response {
        let req = reqwest::Client::new()
            .post(&self.resource)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", method)
            .header("mcp-name", name)
            .body(body.to_owned());
        bounded(req.send()).await.expect("request")
    }

    async fn post(
        &self,
        token: &str,
        method: &str,
        name: &str,
        params: Value,
    ) -> reqwest::Response {
        let mut params = params;
        params["_meta"] = meta();
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        self.post_raw(token, method, name, &body.to_string()).await
    }

    /// Creates a task as `token`; returns its id.
    async fn create(&self, token: &str) -> String {
        self.create_with(token, "report").await
    }

    /// Creates a task with `tool` as `token`; returns its id.
    async fn create_with(&self, token: &str, tool: &str) -> String {
        let resp = self
            .post(
                token,
                "tools/call",
                tool,
                json!({"name": tool, "arguments": {}}),
            )
            .await;
        assert_eq!(resp.status(), 200);
        let answer = message(resp).await;
        assert_eq!(answer["result"]["resultType"], "task", "{answer}");
        answer["result"]["taskId"].as_str().unwrap().to_owned()
    }

    /// `tasks/get` of `task` as `token`: the JSON-RPC answer.
    async fn get(&self, token: &str, task: &str) -> (u16, Value) {
        let resp = self
            .post(token, "tasks/get", task, json!({"taskId": task}))
            .await;
        let status = resp.status().as_u16();
        (status, message(resp).await)
    }

    /// Polls `tasks/get` as the owner until the task settles.
    async fn settle(&self, token: &str, task: &str) -> Value {
        for _ in 0..200 {
            let (status, answer) = self.get(token, task).await;
            assert_eq!(status, 200, "{answer}");
            if answer["result"]["status"] != "working" {
                return answer;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("task {task} never settled");
    }
}

fn meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {
            "extensions": {"io.modelcontextprotocol/tasks": {}}
        },
    })
}

/// A JSON-RPC POST of `body` to `url` with the Bearer `token`, in the
/// legacy `session` when given (with the 2025-11-25 protocol header).
fn legacy_post(
    url: &str,
    token: &str,
    session: Option<&str>,
    body: String,
) -> reqwest::RequestBuilder {
    let mut req = reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body);
    if let Some(session) = session {
        req = req
            .header("mcp-session-id", session)
            .header("mcp-protocol-version", "2025-11-25");
    }
    req
}

/// The one JSON-RPC message of an answer (JSON or a one-event SSE stream).
async fn message(resp: reqwest::Response) -> Value {
    message_of(&resp.text().await.unwrap())
}

/// The one JSON-RPC message of an answer's text.
fn message_of(text: &str) -> Value {
    if let Ok(value) = serde_json::from_str(text) {
        return value;
    }
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(|m| m.get("id").is_some())
        .unwrap_or_else(|| panic!("no JSON-RPC answer in {text:?}"))
}

/// What the server answers for a task that does not exist, with the id
/// replaced, so two answers can be compared.
fn unknown_shape(answer: &Value, task: &str) -> Value {
    let mut a = answer.clone();
    if let Some(m) = a["error"]["message"].as_str() {
        a["error"]["message"] = Value::String(m.replace(task, "<id>"));
    }
    a
}

// The defect: before, bob (same issuer, another subject) holding alice's
// task id read alice's result with `tasks/get`, updated and cancelled it.
// Now he gets exactly what rmcp answers for a task that does not exist.
#[tokio::test]
async fn another_principal_cannot_reach_a_task() {
    let t = Tasks::start().await;
    let alice = t.token("alice", &["notes:write"]);
    let bob = t.token("bob", &["notes:write"]);
    let task = t.create(&alice).await;
    let done = t.settle(&alice, &task).await;
    assert!(done.to_string().contains("secret of alice"), "{done}");

    let missing = "00000000-0000-4000-8000-000000000000";
    let (_, unknown) = t.get(&bob, missing).await;
    assert_eq!(unknown["error"]["code"], -32602, "{unknown}");
    // Byte for byte what rmcp answers for a task that does not exist
    // (content type and body, the id aside).
    let raw = |resp: reqwest::Response| async move {
        let status = resp.status().as_u16();
        let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
        (status, content_type, resp.text().await.unwrap())
    };
    let theirs = raw(t
        .post(&bob, "tasks/get", &task, json!({"taskId": task}))
        .await)
    .await;
    let none = raw(t
        .post(&bob, "tasks/get", missing, json!({"taskId": missing}))
        .await)
    .await;
    assert_eq!(
        (theirs.0, theirs.1, theirs.2.replace(&task, "<id>")),
        (none.0, none.1, none.2.replace(missing, "<id>"))
    );

    let (status, answer) = t.get(&bob, &task).await;
    assert!(!answer.to_string().contains("secret"), "{answer}");
    assert_eq!(status, 200);
    assert_eq!(
        unknown_shape(&answer, &task),
        unknown_shape(&unknown, missing)
    );
    for method in ["tasks/update", "tasks/cancel"] {
        let params = json!({"taskId": task, "inputResponses": {}});
        let resp = t.post(&bob, method, &task, params.clone()).await;
        let answer = message(resp).await;
        let resp = t
            .post(
                &bob,
                method,
                missing,
                json!({"taskId": missing, "inputResponses": {}}),
            )
            .await;
        let unknown = message(resp).await;
        assert_eq!(
            unknown_shape(&answer, &task),
            unknown_shape(&unknown, missing),
            "{method}"
        );
    }
    // Each counted as a refusal: a task without a binding (the unknown id)
    // is answered by the layer too, as rmcp would.
    assert_eq!(t.metrics.snapshot().rejected.get("unknown_task"), Some(&8));
    // Bob's refusals did not cancel alice's task.
    let (_, again) = t.get(&alice, &task).await;
    assert_eq!(again["result"]["status"], "completed", "{again}");
}

// A task of the same subject at another issuer is another principal's.
// The owner's own token, narrowed to scopes that no longer allow the tool
// that made the task, must step up to read its result.
#[tokio::test]
async fn a_narrower_token_of_the_owner_must_step_up() {
    let t = Tasks::start().await;
    let alice = t.token("alice", &["notes:write"]);
    let task = t.create(&alice).await;
    t.settle(&alice, &task).await;
    let narrow = t.token("alice", &["notes:read"]);
    let resp = t
        .post(&narrow, "tasks/get", &task, json!({"taskId": task}))
        .await;
    assert_eq!(resp.status(), 403);
    let c = support::fixture::challenge(&resp);
    assert_eq!(
        support::fixture::param(&c, "error"),
        Some("insufficient_scope")
    );
    assert_eq!(support::fixture::param(&c, "scope"), Some("notes:write"));
    let body = resp.text().await.unwrap();
    assert!(!body.contains("secret"), "{body}");
}

// A task whose work asked for a scope the creating token lacks
// (`AuthContext::require_scopes`, late step-up) and carried on: its result
// is held to that scope too, as a call's answer is, so the owner's token
// that lacks it gets the 403 step-up instead of the result.
#[tokio::test]
async fn a_task_that_asked_for_a_scope_needs_it_for_its_result() {
    let t = Tasks::start().await;
    let alice = t.token("alice", &["notes:write"]);
    let task = t.create_with(&alice, "late").await;
    // Until the task has run, its owner may poll it; then it is held.
    let mut answer = None;
    for _ in 0..200 {
        let resp = t
            .post(&alice, "tasks/get", &task, json!({"taskId": task}))
            .await;
        if resp.status() == 403 {
            answer = Some(resp);
            break;
        }
        let body = message(resp).await;
        assert!(!body.to_string().contains("secret"), "{body}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let resp = answer.expect("the task's result was never held to its late scope");
    let c = support::fixture::challenge(&resp);
    assert_eq!(
        support::fixture::param(&c, "error"),
        Some("insufficient_scope")
    );
    // Everything it needs: the `late` tool has no rule, the work asked
    // for `notes:admin`.
    assert_eq!(support::fixture::param(&c, "scope"), Some("notes:admin"));
    let body = resp.text().await.unwrap();
    assert!(!body.contains("secret"), "{body}");
    // With the scope, the owner reads it.
    let admin = t.token("alice", &["notes:write", "notes:admin"]);
    let (status, done) = t.get(&admin, &task).await;
    assert_eq!(status, 200, "{done}");
    assert!(done.to_string().contains("late: secret of alice"), "{done}");
}

// The task id read from the body is its decoded JSON string: an escaped
// spelling names the same task (and is refused to another principal).
#[tokio::test]
async fn an_escaped_task_id_names_the_same_task() {
    let t = Tasks::start().await;
    let alice = t.token("alice", &["notes:write"]);
    let bob = t.token("bob", &["notes:write"]);
    let task = t.create(&alice).await;
    t.settle(&alice, &task).await;
    // "\u0030" etc.: every character of the id escaped.
    let escaped: String = task
        .chars()
        .map(|c| format!("\\u{:04x}", c as u32))
        .collect();
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{{"taskId":"{escaped}","_meta":{}}}}}"#,
        meta()
    );
    let answer = message(t.post_raw(&bob, "tasks/get", &task, &body).await).await;
    assert!(!answer.to_string().contains("secret"), "{answer}");
    assert_eq!(answer["error"]["code"], -32602, "{answer}");
    let answer = message(t.post_raw(&alice, "tasks/get", &task, &body).await).await;
    assert!(answer.to_string().contains("secret of alice"), "{answer}");
}

// rmcp 3.11 serves no `tasks/list` (SEP-2663 has none): nothing to filter.
#[tokio::test]
async fn there_is_no_task_list() {
    let t = Tasks::start().await;
    let alice = t.token("alice", &["notes:write"]);
    t.create(&alice).await;
    let body =
        json!({"jsonrpc": "2.0", "id": 1, "method": "tasks/list", "params": {"_meta": meta()}});
    let req = reqwest::Client::new()
        .post(&t.resource)
        .header("authorization", format!("Bearer {alice}"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tasks/list")
        .body(body.to_string());
    let resp = bounded(req.send()).await.unwrap();
    let text = resp.text().await.unwrap();
    assert!(!text.contains("taskId"), "{text}");
    assert!(text.contains("-32601") || text.contains("-32602"), "{text}");
}

// Two replicas sharing Redis (and, as a deployment serving tasks from any
// replica must, one task backend): a task created through one is its
// owner's through the other and nobody else's; with Redis down a task
// request is refused (503) and a new task is withheld from its creator.
#[tokio::test]
async fn replicas_share_task_owners_and_fail_closed() {
    let redis = RedisServer::start().await;
    let issuer = Arc::new(TestIssuer::start().await.expect("issuer"));
    let backend = TaskManager::new();
    let store = || -> Option<Arc<dyn SharedStore>> {
        Some(Arc::new(RedisStore::new(&redis.url()).unwrap()))
    };
    let one = Tasks::replica(Arc::clone(&issuer), store(), backend.clone()).await;
    let two = Tasks::replica(issuer, store(), backend).await;
    // One issuer, one audience per replica: each its own tokens.
    let task = one.create(&one.token("alice", &["notes:write"])).await;
    let done = two
        .settle(&two.token("alice", &["notes:write"]), &task)
        .await;
    assert!(done.to_string().contains("secret of alice"), "{done}");
    let (_, answer) = two.get(&two.token("bob", &["notes:write"]), &task).await;
    assert_eq!(answer["error"]["code"], -32602, "{answer}");
    assert!(!answer.to_string().contains("secret"), "{answer}");
    let keys: Vec<String> = redis.dump().await.into_iter().map(|(k, _)| k).collect();
    assert!(
        keys.iter()
            .any(|k| k.starts_with("mcp_oauth2:task:") && !k.contains(&task)),
        "{keys:?}"
    );

    // A stateless answer streamed (a notification first): bound from its event.
    let streamed = one
        .create_with(&one.token("alice", &["notes:write"]), "chatty")
        .await;
    two.settle(&two.token("alice", &["notes:write"]), &streamed)
        .await;
    let (_, answer) = two
        .get(&two.token("bob", &["notes:write"]), &streamed)
        .await;
    assert_eq!(answer["error"]["code"], -32602, "{answer}");

    let mut redis = redis;
    redis.stop();
    let alice = two.token("alice", &["notes:write"]);
    let resp = two
        .post(&alice, "tasks/get", &task, json!({"taskId": task}))
        .await;
    assert_eq!(resp.status(), 503);
    let body = resp.text().await.unwrap();
    assert!(body.contains("store_unavailable"), "{body}");
    let resp = two
        .post(
            &alice,
            "tools/call",
            "report",
            json!({"name": "report", "arguments": {}}),
        )
        .await;
    assert_eq!(resp.status(), 503);
    let body = resp.text().await.unwrap();
    assert!(!body.contains("taskId"), "{body}");
    // Its stream had started (a notification first): the answer that
    // would name the task is replaced by a JSON-RPC error.
    let resp = two
        .post(
            &alice,
            "tools/call",
            "chatty",
            json!({"name": "chatty", "arguments": {}}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(!text.contains("taskId"), "{text}");
    assert!(text.contains("-32603"), "{text}");
}

// The replica that created a task keeps its owner whatever the shared
// store says: the store's values are plain owner digests, and a writer to
// it could copy bob's onto alice's task (found from outside for sessions).
#[tokio::test]
async fn a_store_value_cannot_hand_a_replica_s_task_to_another() {
    let redis = RedisServer::start().await;
    let issuer = Arc::new(TestIssuer::start().await.expect("issuer"));
    let store: Arc<dyn SharedStore> = Arc::new(RedisStore::new(&redis.url()).unwrap());
    let one = Tasks::replica(issuer, Some(store), TaskManager::new()).await;
    let hers = one.create(&one.token("alice", &["notes:write"])).await;
    let bob = one.token("bob", &["notes:write"]);
    let his = one.create(&bob).await;
    let key = |id: &str| {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, id.as_bytes());
        let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        format!("mcp_oauth2:task:{hex}")
    };
    let copied = redis
        .command(&["COPY", &key(&his), &key(&hers), "REPLACE"])
        .await;
    assert_eq!(copied.as_deref(), Some(":1"));
    let (_, answer) = one.get(&bob, &hers).await;
    assert_eq!(answer["error"]["code"], -32602, "{answer}");
    assert!(!answer.to_string().contains("secret"), "{answer}");
    // His own task is still his.
    let done = one.settle(&bob, &his).await;
    assert!(done.to_string().contains("secret of bob"), "{done}");
}

// A legacy session (2025-11-25): rmcp answers the task-creating call in an
// SSE stream; the task is bound from that event before it leaves.
#[tokio::test]
async fn a_task_created_in_a_legacy_session_is_bound_from_its_stream() {
    let t = Tasks::start().await;
    let alice = t.token("alice", &["notes:write"]);
    let bob = t.token("bob", &["notes:write"]);
    let send = |session: Option<String>, body: Value| {
        let req = legacy_post(&t.resource, &alice, session.as_deref(), body.to_string());
        async move { bounded(req.send()).await.unwrap() }
    };
    let init = send(
        None,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {"extensions": {"io.modelcontextprotocol/tasks": {}}},
            "clientInfo": {"name": "t", "version": "1"}}}),
    )
    .await;
    let session = init.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    message(init).await;
    send(
        Some(session.clone()),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    let resp = send(
        Some(session),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "report", "arguments": {}}}),
    )
    .await;
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let answer = message(resp).await;
    let task = answer["result"]["taskId"].as_str().unwrap().to_owned();
    t.settle(&alice, &task).await;
    let (_, answer) = t.get(&bob, &task).await;
    assert_eq!(answer["error"]["code"], -32602, "{answer}");
    assert!(!answer.to_string().contains("secret"), "{answer}");
}

// A plain `AuthLayer` cannot know the app's routes: it judges a JSON POST
// whose body holds JSON-RPC calls as MCP wherever it is sent. Here rmcp
// serves legacy requests without sessions (`legacy_session_mode = false`)
// at `/rpc`, not at the resource's path, and the client sends no MCP
// header. Before, without per-operation rules, such a body was not read:
// alice's task was never bound, and bob read its result.
#[tokio::test]
async fn a_plain_layer_binds_tasks_served_off_its_mcp_path() {
    use rmcp::transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    };
    let tasks = TaskManager::new();
    let mut rmcp_config = StreamableHttpServerConfig::default();
    rmcp_config.legacy_session_mode = false;
    rmcp_config.allowed_hosts = Vec::new();
    let service = StreamableHttpService::new(
        move || {
            Ok(TaskServer {
                tasks: tasks.clone(),
            })
        },
        Arc::new(LocalSessionManager::default()),
        rmcp_config,
    );
    let app = PlainApp::start(axum::Router::new().route_service("/rpc", service)).await;
    let token = |subject: &str| app.token(subject);
    let addr = app.addr;
    // Legacy (no protocol version): the client declares tasks in `_meta`.
    let meta = json!({"io.modelcontextprotocol/clientCapabilities": {
        "extensions": {"io.modelcontextprotocol/tasks": {}}
    }});
    let post = |token: String, body: Value| async move {
        let req = reqwest::Client::new()
            .post(format!("http://{addr}/rpc"))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body.to_string());
        message(bounded(req.send()).await.expect("request")).await
    };
    let created = post(
        token("alice"),
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
               "params": {"name": "report", "arguments": {}, "_meta": meta}}),
    )
    .await;
    let task = created["result"]["taskId"]
        .as_str()
        .expect("a task")
        .to_owned();
    let get = |who: &str| {
        post(
            token(who),
            json!({"jsonrpc": "2.0", "id": 2, "method": "tasks/get",
                   "params": {"taskId": task, "_meta": meta}}),
        )
    };
    let mut done = Value::Null;
    for _ in 0..200 {
        done = get("alice").await;
        if done["result"]["status"] != "working" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(done.to_string().contains("secret of alice"), "{done}");
    let answer = get("bob").await;
    assert!(!answer.to_string().contains("secret"), "{answer}");
    assert_eq!(answer["error"]["code"], -32602, "{answer}");
}

/// An app with a plain `AuthLayer` (resource `/mcp`) in front of its
/// routes, served on loopback until dropped.
struct PlainApp {
    issuer: Arc<TestIssuer>,
    resource: String,
    addr: std::net::SocketAddr,
    serving: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl PlainApp {
    async fn start(routes: axum::Router) -> Self {
        let issuer = Arc::new(TestIssuer::start().await.expect("issuer"));
        Self::replica(routes, issuer, None).await
    }

    /// One of several apps trusting `issuer`, each its own resource,
    /// sharing `store` (session and task owners) when given.
    async fn replica(
        routes: axum::Router,
        issuer: Arc<TestIssuer>,
        store: Option<Arc<dyn SharedStore>>,
    ) -> Self {
        let (listener, resource, config) = bind_with_config(&issuer, |b| match store {
            Some(store) => b.shared_store(store),
            None => b,
        })
        .await;
        let addr = listener.local_addr().unwrap();
        let app = routes.layer(mcp_oauth2::AuthLayer::new(config).unwrap());
        let serving = tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            issuer,
            resource,
            addr,
            serving,
        }
    }

    /// A token of `subject` for the resource, with `notes:write`.
    fn token(&self, subject: &str) -> String {
        self.issuer
            .token()
            .subject(subject)
            .audience(&self.resource)
            .scopes(["notes:write"])
            .sign()
    }

    /// POSTs the JSON-RPC request `body` to the resource as `who`, in the
    /// protocol revision `version`, with the `Mcp-Method` and `Mcp-Name`
    /// headers it calls for (the tool's name, or the task's id).
    /// POSTs `body` (a legacy JSON-RPC message) as `who`, in `session`
    /// when given (with the 2025-11-25 protocol header).
    async fn post_legacy(&self, who: &str, session: Option<&str>, body: &str) -> reqwest::Response {
        let req = legacy_post(&self.resource, &self.token(who), session, body.to_owned());
        bounded(req.send()).await.expect("request")
    }

    /// Opens a legacy session as `who` with `initialize` (its text).
    async fn open_session(&self, who: &str, initialize: &str) -> String {
        let resp = self.post_legacy(who, None, initialize).await;
        assert_eq!(resp.status(), 200);
        resp.headers()["mcp-session-id"]
            .to_str()
            .unwrap()
            .to_owned()
    }

    /// Creates a task as alice with a `tools/call` in `session` whose
    /// `_meta` is `meta`; its id.
    async fn create_in_session(&self, session: &str, meta: Value) -> String {
        let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                          "params": {"name": "report", "arguments": {}, "_meta": meta}});
        let created = message(
            self.post_legacy("alice", Some(session), &call.to_string())
                .await,
        )
        .await;
        assert_eq!(created["result"]["resultType"], "task", "{created}");
        created["result"]["taskId"].as_str().unwrap().to_owned()
    }

    /// What `tasks/get` of `task` answers `who` (legacy, no session: a
    /// task's binding is the principal's, not the session's).
    async fn get_legacy(&self, who: &str, task: &str) -> Value {
        let get = json!({"jsonrpc": "2.0", "id": 2, "method": "tasks/get",
                         "params": {"taskId": task}});
        message(self.post_legacy(who, None, &get.to_string()).await).await
    }

    /// Asserts that alice, and alice only, reads `task`'s result here.
    async fn assert_bound_to_alice(&self, task: &str) {
        let mine = self.get_legacy("alice", task).await;
        assert!(mine.to_string().contains("secret of"), "{task}: {mine}");
        let theirs = self.get_legacy("bob", task).await;
        assert_eq!(theirs["error"]["code"], -32602, "{task}: {theirs}");
        assert!(!theirs.to_string().contains("secret"), "{task}: {theirs}");
    }

    /// Asserts that nobody reads `task`'s result here (no owner).
    async fn assert_nobodys(&self, task: &str) {
        for who in ["alice", "bob"] {
            let answer = self.get_legacy(who, task).await;
            assert_eq!(answer["error"]["code"], -32602, "{who}, {task}: {answer}");
            assert!(!answer.to_string().contains("secret"), "{task}: {answer}");
        }
    }

    async fn post(&self, who: &str, version: &str, body: Value) -> reqwest::Response {
        let method = body["method"].as_str().unwrap().to_owned();
        let name = body["params"]["name"]
            .as_str()
            .or(body["params"]["taskId"].as_str())
            .unwrap()
            .to_owned();
        let req = reqwest::Client::new()
            .post(&self.resource)
            .bearer_auth(self.token(who))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", version)
            .header("mcp-method", method)
            .header("mcp-name", name)
            .body(body.to_string());
        bounded(req.send()).await.expect("request")
    }
}

impl Drop for PlainApp {
    fn drop(&mut self) {
        self.serving.abort();
    }
}

// Issue 13: a stateless `tools/call` that does not declare the tasks
// extension is not read for tasks (its answer leaves as rmcp writes it):
// rmcp lets no handler answer it with a task. A service that creates one
// anyway leaves it without an owner, unknown to everyone, its creator
// included (fail closed); a declared call, or any legacy call (whose
// client declares in `initialize`), is still read and bound.
#[tokio::test]
async fn a_task_of_a_call_that_did_not_declare_tasks_has_no_owner() {
    let app =
        PlainApp::start(axum::Router::new().route("/mcp", axum::routing::post(task_service))).await;
    let post = |who: &'static str, version: &'static str, body: Value| {
        let sent = app.post(who, version, body);
        async move { message(sent.await).await }
    };
    let create = |version: &'static str, meta: Value| {
        let created = post(
            "alice",
            version,
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                   "params": {"name": "report", "arguments": {}, "_meta": meta}}),
        );
        async move {
            let created = created.await;
            assert_eq!(created["result"]["resultType"], "task", "{created}");
            created["result"]["taskId"].as_str().unwrap().to_owned()
        }
    };
    let get = |who: &'static str, version: &'static str, task: &str| {
        post(
            who,
            version,
            json!({"jsonrpc": "2.0", "id": 2, "method": "tasks/get",
                   "params": {"taskId": task, "_meta": meta()}}),
        )
    };
    let unknown = |answer: &Value| {
        assert_eq!(answer["error"]["code"], -32602, "{answer}");
        assert!(!answer.to_string().contains("secret"), "{answer}");
    };

    // Declared, stateless: bound to alice.
    let declared = create("2026-07-28", meta()).await;
    let answer = get("alice", "2026-07-28", &declared).await;
    assert!(answer.to_string().contains("secret of"), "{answer}");
    unknown(&get("bob", "2026-07-28", &declared).await);

    // Not declared, stateless: nobody's.
    let mut undeclared_meta = meta();
    undeclared_meta["io.modelcontextprotocol/clientCapabilities"] = json!({});
    let undeclared = create("2026-07-28", undeclared_meta).await;
    unknown(&get("alice", "2026-07-28", &undeclared).await);
    unknown(&get("bob", "2026-07-28", &undeclared).await);

    // Not declared in the request, legacy revision: still bound to alice.
    let legacy = create("2025-11-25", json!({})).await;
    let answer = get("alice", "2025-11-25", &legacy).await;
    assert!(answer.to_string().contains("secret of"), "{answer}");
    unknown(&get("bob", "2025-11-25", &legacy).await);
}

/// The answer (to the request `id`) of a call that created the task `task`.
fn task_created(id: &Value, task: String) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": {"resultType": "task",
        "taskId": task, "status": "working", "ttlMs": 60_000,
        "createdAt": "2026-12-04T00:00:00Z", "lastUpdatedAt": "2026-12-04T00:00:00Z"}})
}

/// The answer of a `tasks/get` (`message`): the task's secret, to anyone.
fn task_secret(message: &Value) -> Value {
    let task = &message["params"]["taskId"];
    json!({"jsonrpc": "2.0", "id": message["id"], "result": {"resultType": "complete",
        "status": "completed", "result": format!("secret of {task}")}})
}

/// A service behind a plain `AuthLayer` that answers every `tools/call`
/// with a new task, whatever the client declared (it skips the check
/// rmcp's `ServerHandler` makes), and every `tasks/get` with that task's
/// secret, to anyone. The creating answer is one JSON frame, or reaches
/// the layer cut into small frames by the tool's name: a JSON answer in
/// 7-byte frames (`json`), an event stream with a progress event first in
/// 5-byte frames (`sse`), or one whose last event has no blank line after
/// it (`sse-open`).
async fn task_service(body: String) -> axum::response::Response {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let message: Value = serde_json::from_str(&body).unwrap();
    let id = &message["id"];
    if message["method"] == "tasks/get" {
        let answer = task_secret(&message);
        return axum::response::IntoResponse::into_response(axum::Json(answer));
    }
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let answer = task_created(id, format!("framed-{n}"));
    let progress = json!({"jsonrpc": "2.0", "method": "notifications/progress",
        "params": {"progressToken": 1, "progress": 1}});
    let tool = message["params"]["name"].as_str().unwrap();
    let (content_type, text, frame) = match tool {
        "json" => ("application/json", answer.to_string(), 7),
        "sse-open" => (
            "text/event-stream",
            format!("data: {progress}\n\ndata: {answer}"),
            5,
        ),
        "sse" => (
            "text/event-stream",
            format!("data: {progress}\n\ndata: {answer}\n\n"),
            5,
        ),
        _ => {
            return axum::response::IntoResponse::into_response(axum::Json(answer));
        }
    };
    let frames: Vec<Result<Vec<u8>, std::io::Error>> = text
        .into_bytes()
        .chunks(frame)
        .map(|c| Ok(c.to_vec()))
        .collect();
    axum::response::Response::builder()
        .header("content-type", content_type)
        .body(axum::body::Body::from_stream(futures_util::stream::iter(
            frames,
        )))
        .unwrap()
}

// A declared call's task is bound to its creator whatever the framing of
// its answer: a JSON answer in several frames, events cut across frames,
// a last event left open. Each answer reaches the client whole.
#[tokio::test]
async fn a_task_is_bound_whatever_the_framing_of_its_answer() {
    let app =
        PlainApp::start(axum::Router::new().route("/mcp", axum::routing::post(task_service))).await;
    let post = |who: &'static str, method: &str, params: Value| {
        app.post(
            who,
            "2026-07-28",
            json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}),
        )
    };
    for tool in ["json", "sse", "sse-open"] {
        let resp = post(
            "alice",
            "tools/call",
            json!({"name": tool, "arguments": {}, "_meta": meta()}),
        )
        .await;
        assert_eq!(resp.status(), 200, "{tool}");
        let text = resp.text().await.unwrap();
        if tool != "json" {
            assert!(text.contains("notifications/progress"), "{tool}: {text}");
        }
        let created = message_of(&text);
        assert_eq!(created["result"]["resultType"], "task", "{tool}: {text}");
        let task = created["result"]["taskId"].as_str().unwrap().to_owned();
        let get = |who: &'static str| {
            let sent = post(who, "tasks/get", json!({"taskId": task, "_meta": meta()}));
            async move { message(sent.await).await }
        };
        let mine = get("alice").await;
        assert!(mine.to_string().contains("secret of"), "{tool}: {mine}");
        let theirs = get("bob").await;
        assert_eq!(theirs["error"]["code"], -32602, "{tool}: {theirs}");
        assert!(!theirs.to_string().contains("secret"), "{tool}: {theirs}");
    }
}

/// A service behind a plain `AuthLayer` that keeps legacy sessions as
/// rmcp does (an `initialize` opens one, named in `Mcp-Session-Id`) and,
/// as [`task_service`], answers every `tools/call` with a new task in an
/// event stream whatever the client declared, and every `tasks/get` with
/// that task's secret.
async fn session_task_service(body: String) -> axum::response::Response {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let message: Value = serde_json::from_str(&body).unwrap();
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let answer = match message["method"].as_str().unwrap() {
        "initialize" => {
            let answer = json!({"jsonrpc": "2.0", "id": message["id"], "result": {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "serverInfo": {"name": "s", "version": "1"}}});
            let mut resp = axum::response::IntoResponse::into_response(axum::Json(answer));
            resp.headers_mut()
                .insert("mcp-session-id", format!("session-{n}").parse().unwrap());
            return resp;
        }
        "tools/call" => task_created(&message["id"], format!("in-session-{n}")),
        _ => task_secret(&message),
    };
    axum::response::Response::builder()
        .header("content-type", "text/event-stream")
        .body(axum::body::Body::from(format!("data: {answer}\n\n")))
        .unwrap()
}

// Issue 13: in a legacy session rmcp lets a handler answer a `tools/call`
// with a task only if the client declared the tasks extension, in the
// `initialize` that opened the session or in the call's own `_meta`. The
// session table remembers the first: a call of a session that declared
// nothing is not read for tasks (one wrapper less on every such call). A
// service that creates one anyway leaves it without an owner, unknown to
// everyone (fail closed); a declaring session, a declaring call and a
// session that declares in a later `initialize` are still read and bound.
#[tokio::test]
async fn a_legacy_session_that_did_not_declare_tasks_has_none_bound() {
    let app = PlainApp::start(
        axum::Router::new().route("/mcp", axum::routing::post(session_task_service)),
    )
    .await;
    let tasks_extension = json!({"extensions": {"io.modelcontextprotocol/tasks": {}}});

    // Declared in `initialize` (also spelled with an escape): bound.
    let declaring = app
        .open_session("alice", &legacy_initialize(&tasks_extension))
        .await;
    app.assert_bound_to_alice(&app.create_in_session(&declaring, json!({})).await)
        .await;
    let escaped = legacy_initialize(&tasks_extension).replace("/tasks", "/t\\u0061sks");
    assert!(escaped.contains("t\\u0061sks"), "{escaped}");
    let escaped = app.open_session("alice", &escaped).await;
    app.assert_bound_to_alice(&app.create_in_session(&escaped, json!({})).await)
        .await;

    // Declared nowhere, or elsewhere than rmcp reads it: nobody's.
    let silent = app
        .open_session(
            "alice",
            &legacy_initialize(&json!({"experimental": {"io.modelcontextprotocol/tasks": {}}})),
        )
        .await;
    app.assert_nobodys(&app.create_in_session(&silent, json!({})).await)
        .await;
    let mut in_meta: Value = serde_json::from_str(&legacy_initialize(&json!({}))).unwrap();
    in_meta["params"]["_meta"] =
        json!({"io.modelcontextprotocol/clientCapabilities": tasks_extension.clone()});
    let in_meta = app.open_session("alice", &in_meta.to_string()).await;
    app.assert_nobodys(&app.create_in_session(&in_meta, json!({})).await)
        .await;

    // Declared by the call itself, in a silent session: bound.
    let meta = json!({"io.modelcontextprotocol/clientCapabilities": tasks_extension.clone()});
    app.assert_bound_to_alice(&app.create_in_session(&silent, meta).await)
        .await;

    // A later `initialize` in the session that declares them: from then
    // on, bound.
    let resp = app
        .post_legacy("alice", Some(&silent), &legacy_initialize(&tasks_extension))
        .await;
    assert_eq!(resp.status(), 200);
    app.assert_bound_to_alice(&app.create_in_session(&silent, json!({})).await)
        .await;

    // Another principal cannot use alice's session at all.
    let call = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
                      "params": {"name": "report", "arguments": {}}});
    let resp = app
        .post_legacy("bob", Some(&silent), &call.to_string())
        .await;
    assert_eq!(resp.status(), 404);
}

/// An `initialize` of the 2025-11-25 revision declaring `capabilities`.
fn legacy_initialize(capabilities: &Value) -> String {
    json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": capabilities,
        "clientInfo": {"name": "t", "version": "1"}}})
    .to_string()
}

// With replicas sharing a store, a session opened on one may declare the
// tasks extension in a later `initialize` handled by another: the replica
// that bound the session must not trust what it saw at the start. Each
// replica reads every session call (the declaration is kept only to spare
// a single process the reading).
#[tokio::test]
async fn with_replicas_a_session_declaring_tasks_later_has_them_bound_everywhere() {
    let redis = RedisServer::start().await;
    let issuer = Arc::new(TestIssuer::start().await.expect("issuer"));
    let store = || -> Option<Arc<dyn SharedStore>> {
        Some(Arc::new(RedisStore::new(&redis.url()).unwrap()))
    };
    let routes = || axum::Router::new().route("/mcp", axum::routing::post(session_task_service));
    let one = PlainApp::replica(routes(), Arc::clone(&issuer), store()).await;
    let two = PlainApp::replica(routes(), issuer, store()).await;
    let silent = one
        .open_session("alice", &legacy_initialize(&json!({})))
        .await;
    let declaring =
        legacy_initialize(&json!({"extensions": {"io.modelcontextprotocol/tasks": {}}}));
    let resp = two.post_legacy("alice", Some(&silent), &declaring).await;
    assert_eq!(resp.status(), 200);
    let task = one.create_in_session(&silent, json!({})).await;
    one.assert_bound_to_alice(&task).await;
    two.assert_bound_to_alice(&task).await;
}

/// A service without tasks: rmcp's defaults, tools only.
#[derive(Clone)]
struct NoTasks;

impl ServerHandler for NoTasks {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

/// rmcp alone serving `handler` (no layer), answering stateless requests
/// in JSON (`McpServer`'s default) or in event streams (rmcp's), at the
/// URL returned, until the guard is dropped.
async fn bare_rmcp<S>(handler: S, json: bool) -> (String, tokio_util::sync::DropGuard)
where
    S: ServerHandler + Clone + Send + Sync + 'static,
{
    use rmcp::transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    };
    let ct = CancellationToken::new();
    let mut config = StreamableHttpServerConfig::default().with_json_response(json);
    config.allowed_hosts = Vec::new();
    let service = StreamableHttpService::new(
        move || Ok(handler.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let app = axum::Router::new().route_service("/mcp", service);
    let stop = ct.clone();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await
    });
    (url, ct.drop_guard())
}

/// A stateless request of `method` naming the task `id`, from a client
/// that declares the tasks extension or not: status, content type, body.
async fn ask_for_task(
    url: &str,
    token: Option<&str>,
    method: &str,
    id: &str,
    declared: bool,
) -> (u16, String, String) {
    let mut meta = meta();
    if !declared {
        meta["io.modelcontextprotocol/clientCapabilities"] = json!({});
    }
    let mut params = json!({"taskId": id, "_meta": meta});
    if method == "tasks/update" {
        params["inputResponses"] = json!({});
    }
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params});
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method)
        .header("mcp-name", id)
        .body(body.to_string());
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = bounded(req.send()).await.expect("request");
    let status = resp.status().as_u16();
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    (status, content_type, resp.text().await.unwrap())
}

// Found from outside (round 2): a request naming a task that is not the
// caller's was answered "unknown task" (-32602, HTTP 200) whatever the
// service, although rmcp alone answers -32601 (HTTP 404, "method not
// found") for a service without tasks and -32021 (HTTP 400) to a client
// that did not declare the tasks extension, and the layer's message had
// its members in another order than rmcp's. The docs promise rmcp's own
// answer for a task that does not exist: compared here byte for byte with
// rmcp alone, for every method, with and without the client's
// declaration, for a service with tasks (bob naming alice's task) and one
// without.
#[tokio::test]
async fn a_task_that_is_not_the_callers_gets_rmcps_own_answer_byte_for_byte() {
    let t = Tasks::start().await;
    let alice = t.token("alice", &["notes:write"]);
    let bob = t.token("bob", &["notes:write"]);
    let task = t.create(&alice).await;
    let (bare_tasks, _stop) = bare_rmcp(
        TaskServer {
            tasks: TaskManager::new(),
        },
        true,
    )
    .await;
    let (bare_none, _stop_none) = bare_rmcp(NoTasks, true).await;
    let (listener, none_url, config) = bind_with_config(&t.issuer, |b| b).await;
    let server = McpServer::builder()
        .auth(config)
        .service(|| Ok(NoTasks))
        .build()
        .unwrap();
    let none_metrics = server.metrics();
    let _stop_layered = server.cancellation_token().drop_guard();
    tokio::spawn(server.serve_with_shutdown(listener, std::future::pending()));
    let bob_none = t.issuer.token().subject("bob").audience(&none_url).sign();

    let missing = "00000000-0000-4000-8000-000000000000";
    let mut seen = std::collections::BTreeSet::new();
    for declared in [true, false] {
        for method in ["tasks/get", "tasks/update", "tasks/cancel"] {
            let ours = ask_for_task(&t.resource, Some(&bob), method, &task, declared).await;
            let theirs = ask_for_task(&bare_tasks, None, method, missing, declared).await;
            assert_eq!(
                (ours.0, ours.1, ours.2.replace(&task, "<id>")),
                (theirs.0, theirs.1, theirs.2.replace(missing, "<id>")),
                "{method}, declared: {declared}"
            );
            assert!(!ours.2.contains("secret"), "{}", ours.2);
            seen.insert(ours.0);
            let ours = ask_for_task(&none_url, Some(&bob_none), method, missing, declared).await;
            let theirs = ask_for_task(&bare_none, None, method, missing, declared).await;
            assert_eq!(ours, theirs, "no tasks: {method}, declared: {declared}");
            seen.insert(ours.0);
        }
    }
    // All three of rmcp's answers were met: unknown task, undeclared
    // client, no tasks at all.
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), [200, 400, 404]);
    // With tasks, each is the layer's refusal, counted; without, rmcp
    // refuses them itself before any task is looked up, so they reach it.
    assert_eq!(t.metrics.snapshot().rejected.get("unknown_task"), Some(&6));
    assert_eq!(none_metrics.snapshot().rejected.get("unknown_task"), None);

    // Found from outside (fourth pass): in a legacy session the answer was
    // one bare event, where rmcp sends a priming event, event ids and a
    // retry hint. Without tasks it is rmcp's own now, compared byte for
    // byte after the same requests in a session of each.
    let mut answers = Vec::new();
    for (url, token) in [(&none_url, Some(bob_none.as_str())), (&bare_none, None)] {
        let post = |session: Option<&str>, body: String| {
            let mut req = reqwest::Client::new()
                .post(url.as_str())
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .body(body);
            if let Some(token) = token {
                req = req.bearer_auth(token);
            }
            if let Some(session) = session {
                req = req
                    .header("mcp-session-id", session)
                    .header("mcp-protocol-version", "2025-11-25");
            }
            req
        };
        let opened = bounded(post(None, legacy_initialize(&json!({}))).send())
            .await
            .expect("initialize");
        assert_eq!(opened.status(), 200, "{url}");
        let session = opened.headers()["mcp-session-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let _ = opened.text().await;
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let done = bounded(post(Some(&session), initialized.to_string()).send())
            .await
            .expect("initialized");
        assert_eq!(done.status(), 202, "{url}");
        let get = json!({"jsonrpc": "2.0", "id": 7, "method": "tasks/get",
                         "params": {"taskId": missing}});
        let resp = bounded(post(Some(&session), get.to_string()).send())
            .await
            .expect("tasks/get");
        let status = resp.status().as_u16();
        let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
        answers.push((status, content_type, resp.text().await.unwrap()));
    }
    assert_eq!(answers[0], answers[1], "legacy, no tasks");
    assert!(answers[0].2.contains("-32601"), "{:?}", answers[0]);
    // Alice's task is untouched.
    let (_, again) = t.get(&alice, &task).await;
    assert!(again.to_string().contains("secret of alice"), "{again}");

    // rmcp set to answer in event streams (its own default): the unknown
    // task is an event there too, the other answers JSON, as rmcp has them.
    let (bare_sse, _stop_sse) = bare_rmcp(
        TaskServer {
            tasks: TaskManager::new(),
        },
        false,
    )
    .await;
    let (listener, sse_url, config) = bind_with_config(&t.issuer, |b| {
        b.scopes_supported(["notes:read", "notes:write"])
    })
    .await;
    let tasks = TaskManager::new();
    let server = McpServer::builder()
        .auth(config)
        .rmcp_config(|c| c.with_json_response(false))
        .service(move || {
            Ok(TaskServer {
                tasks: tasks.clone(),
            })
        })
        .build()
        .unwrap();
    let _stop_layered_sse = server.cancellation_token().drop_guard();
    tokio::spawn(server.serve_with_shutdown(listener, std::future::pending()));
    let token = |sub: &str| {
        t.issuer
            .token()
            .subject(sub)
            .audience(&sse_url)
            .scopes(["notes:write"])
            .sign()
    };
    for declared in [true, false] {
        let ours = ask_for_task(
            &sse_url,
            Some(&token("bob")),
            "tasks/get",
            missing,
            declared,
        )
        .await;
        let theirs = ask_for_task(&bare_sse, None, "tasks/get", missing, declared).await;
        assert_eq!(ours, theirs, "event streams, declared: {declared}");
    }
}
