//! Answers a client does not take are bounded in bytes, per user and per
//! process (found from outside: one token holder left 200 `list_notes`
//! pages unread on each HTTP/2 connection, 90 MB a connection, on as many
//! connections as it liked). Real server, real HTTP/2 clients that never
//! open their flow-control windows, a real HTTP/1 client that reads.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

mod support;

use std::time::Duration;

use axum::body::Bytes;
use support::attack::{MODERN, modern_tool_call_body};

/// The text `big` answers: 100,000 bytes, so its JSON answer is a little
/// more.
const BIG: usize = 100_000;

/// A server whose `big` tool answers [`BIG`] bytes of text, `medium`
/// 10,000, `chatty_big` a log line then [`BIG`] bytes, `small` a few.
#[derive(Clone)]
struct Big {
    tool_router: rmcp::handler::server::router::tool::ToolRouter<Self>,
}

#[rmcp::tool_router]
impl Big {
    #[rmcp::tool(description = "answers 100,000 bytes")]
    async fn big(&self) -> String {
        "x".repeat(BIG)
    }

    #[rmcp::tool(description = "answers 10,000 bytes: one copy")]
    async fn medium(&self) -> String {
        "m".repeat(10_000)
    }

    #[rmcp::tool(description = "logs a line, then answers 100,000 bytes")]
    async fn chatty_big(
        &self,
        context: rmcp::service::RequestContext<rmcp::service::RoleServer>,
    ) -> String {
        #[allow(deprecated)]
        let message = rmcp::model::LoggingMessageNotificationParam::new(
            rmcp::model::LoggingLevel::Info,
            serde_json::json!("starting"),
        );
        #[allow(deprecated)]
        let _ = context.peer.notify_logging_message(message).await;
        "x".repeat(BIG)
    }

    #[rmcp::tool(description = "answers a few bytes")]
    async fn small(&self) -> String {
        "ok".to_owned()
    }
}

#[rmcp::tool_handler(router = self.tool_router)]
impl rmcp::ServerHandler for Big {
    fn get_info(&self) -> rmcp::model::ServerConfig {
        rmcp::model::ServerConfig::new(
            rmcp::model::ServerCapabilities::builder()
                .enable_tools()
                .build(),
        )
    }
}

/// A server whose `tools/list` answers 30 tools of 4,000-byte
/// descriptions (about 120 KB), for a list the layer reads and rebuilds
/// (`hide_unauthorized_in_lists`).
#[derive(Clone)]
struct Lists;

impl rmcp::ServerHandler for Lists {
    fn get_info(&self) -> rmcp::model::ServerConfig {
        rmcp::model::ServerConfig::new(
            rmcp::model::ServerCapabilities::builder()
                .enable_tools()
                .build(),
        )
    }

    async fn list_tools(
        &self,
        _request: Option<rmcp::model::PaginatedRequestParams>,
        _context: rmcp::service::RequestContext<rmcp::service::RoleServer>,
    ) -> Result<rmcp::model::ListToolsResult, rmcp::ErrorData> {
        let schema: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(r#"{"type":"object"}"#).unwrap();
        let schema = std::sync::Arc::new(schema);
        let tools = (0..30)
            .map(|i| rmcp::model::Tool::new(format!("tool{i}"), "d".repeat(4000), schema.clone()))
            .collect();
        Ok(rmcp::model::ListToolsResult::with_all_items(tools))
    }
}

struct Server {
    addr: std::net::SocketAddr,
    resource: String,
    issuer: mcp_oauth2::testing::TestIssuer,
    stop: tokio_util::sync::CancellationToken,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Server {
    /// Each user may hold 320,000 bytes of answers not taken (three `big`
    /// answers of 100,113 bytes, not four), the process 420,000 (four, not
    /// five). An answer counts whole until its last copy has been taken
    /// and the server asked for more, whatever the window. Each user may
    /// have 5 event-stream answers in progress.
    async fn start() -> Self {
        Self::start_with(false, true).await
    }

    /// [`start`](Self::start), serving [`Lists`] with lists filtered when
    /// `lists`.
    async fn start_with(lists: bool, hold_streams: bool) -> Self {
        let issuer = mcp_oauth2::testing::TestIssuer::start().await.unwrap();
        let (listener, resource, config) = support::loopback::bind_with_config(&issuer, |b| {
            b.max_unsent_answer_bytes_per_principal(320_000)
                .max_unsent_answer_bytes(420_000)
                .max_answer_streams_per_principal(5)
                .hide_unauthorized_in_lists(lists)
                .hold_streams_for_step_up(hold_streams)
        })
        .await;
        let addr = listener.local_addr().unwrap();
        let builder = mcp_oauth2::McpServer::builder().auth(config);
        let server = if lists {
            builder.service(|| Ok(Lists)).build().unwrap()
        } else {
            builder
                .service(|| {
                    Ok(Big {
                        tool_router: Big::tool_router(),
                    })
                })
                .build()
                .unwrap()
        };
        let stop = server.cancellation_token();
        tokio::spawn(server.serve_with_shutdown(listener, std::future::pending()));
        Self {
            addr,
            resource,
            issuer,
            stop,
        }
    }

    fn token(&self, subject: &str) -> String {
        self.issuer
            .token()
            .subject(subject)
            .audience(&self.resource)
            .sign()
    }

    fn call(&self, token: &str, tool: &str, id: u64) -> (http::Request<()>, Bytes) {
        let head = http::Request::post(&self.resource)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", MODERN)
            .header("mcp-method", "tools/call")
            .header("mcp-name", tool)
            .header("authorization", format!("Bearer {token}"))
            .body(())
            .unwrap();
        (head, Bytes::from(modern_tool_call_body(id, tool)))
    }

    /// An HTTP/2 connection whose client never lets the server send a byte
    /// of any answer (its streams' windows are zero): heads arrive, bodies
    /// never. Dropping it closes the connection.
    async fn unread_connection(&self) -> Unread {
        let tcp = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let (client, connection) = h2::client::Builder::new()
            .initial_window_size(0)
            .handshake::<_, Bytes>(tcp)
            .await
            .unwrap();
        let task = tokio::spawn(async move {
            let _ = connection.await;
        });
        Unread {
            client,
            task,
            answers: Vec::new(),
        }
    }

    /// A call over HTTP/1 by a client that reads its answer: status, the
    /// JSON-RPC text of the tool's result or the body.
    async fn read_call(&self, token: &str, tool: &str) -> (u16, serde_json::Value) {
        let (status, text) = self.send_reading(self.call(token, tool, 9)).await;
        (status, serde_json::from_str(&text).unwrap())
    }

    /// `call` sent over HTTP/1 by a client that reads its answer: the
    /// status and the body.
    async fn send_reading(&self, call: (http::Request<()>, Bytes)) -> (u16, String) {
        let (head, body) = call;
        let mut request = reqwest::Client::new().post(&self.resource);
        for (name, value) in head.headers() {
            request = request.header(name.as_str(), value.as_bytes());
        }
        let response = request.body(body).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }
}

/// The answers left unread on one connection.
struct Unread {
    client: h2::client::SendRequest<Bytes>,
    task: tokio::task::JoinHandle<()>,
    answers: Vec<h2::RecvStream>,
}

impl Unread {
    /// Sends a call and waits for its head (not its body): the status and
    /// the body's `reason` when it is a refusal (refusals are small, and
    /// the window still lets none of their bytes through: read from the
    /// headers only, so the reason is asked of the refusal's JSON body
    /// later; here, its status and `Retry-After`).
    async fn call(&mut self, call: (http::Request<()>, Bytes)) -> (u16, Option<String>) {
        let (head, body) = call;
        let client = self.client.clone().ready().await.unwrap();
        self.client = client;
        let (response, mut stream) = self.client.send_request(head, false).unwrap();
        stream.send_data(body, true).unwrap();
        let response = tokio::time::timeout(Duration::from_secs(15), response)
            .await
            .expect("the answer's head")
            .unwrap();
        let status = response.status().as_u16();
        let retry = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        self.answers.push(response.into_body());
        (status, retry)
    }
}

impl Drop for Unread {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A client reading its answers is served, and can read one once its
/// unread ones are gone (their connection closed).
async fn served_again(server: &Server, token: &str) {
    for _ in 0..100 {
        let (status, answer) = server.read_call(token, "big").await;
        if status == 200 {
            let text = answer["result"]["content"][0]["text"].as_str().unwrap();
            assert_eq!(
                text.len(),
                BIG,
                "the answer, copied out in chunks, is whole"
            );
            assert!(text.bytes().all(|b| b == b'x'));
            return;
        }
        assert_eq!(status, 429, "{answer}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the user's bytes were never given back");
}

#[tokio::test]
async fn answers_left_unread_are_bounded_per_user_and_per_process() {
    let server = Server::start().await;
    let (alice, bob) = (server.token("alice"), server.token("bob"));

    // Alice leaves three `big` answers unread: within her bound.
    let mut hers = server.unread_connection().await;
    for id in 1..=3 {
        assert_eq!(hers.call(server.call(&alice, "big", id)).await.0, 200);
    }
    // Her fourth would pass it: dropped for a 429, on this connection and
    // on a new one alike (her user, not her connection).
    assert_eq!(
        hers.call(server.call(&alice, "big", 4)).await,
        (429, Some("1".to_owned()))
    );
    let mut again = server.unread_connection().await;
    assert_eq!(again.call(server.call(&alice, "big", 5)).await.0, 429);
    // Small answers are not counted: she is still served those.
    assert_eq!(again.call(server.call(&alice, "small", 6)).await.0, 200);
    // Over HTTP/1, read at once: the refusal names its reason.
    let (status, refusal) = server.read_call(&alice, "big").await;
    assert_eq!(status, 429);
    assert_eq!(refusal["reason"], "too_many_unsent_answers_for_principal");
    assert_eq!(refusal["error"], "too_many_unsent_answers");
    assert!(
        refusal["error_description"]
            .as_str()
            .unwrap()
            .contains("carried out"),
        "{refusal}"
    );

    // Bob is not counted with her: his first fits the process's bound,
    // his second would pass it (503), though his own bound has room.
    let mut his = server.unread_connection().await;
    assert_eq!(his.call(server.call(&bob, "big", 1)).await.0, 200);
    assert_eq!(
        his.call(server.call(&bob, "big", 2)).await,
        (503, Some("1".to_owned()))
    );
    let (status, refusal) = server.read_call(&bob, "big").await;
    assert_eq!(status, 503);
    assert_eq!(refusal["reason"], "too_many_unsent_answers");
    assert_eq!(refusal["error"], "temporarily_unavailable");

    // Alice's unread connection closes: her bytes come back, and a client
    // of hers that reads gets her answer whole.
    drop(hers);
    served_again(&server, &alice).await;
    drop((again, his));
    served_again(&server, &bob).await;
}

#[tokio::test]
async fn a_legacy_sessions_held_answer_is_counted_before_its_head_leaves() {
    let server = Server::start().await;
    let alice = server.token("alice");
    // A 2025-11-25 session: every answer is an event stream, its head held
    // until its first event (late step-up), counted while held.
    let session = legacy_session(&server, &alice).await;
    let mut hers = server.unread_connection().await;
    for id in 1..=3 {
        let call = legacy_call(&server, &alice, &session, id);
        assert_eq!(hers.call(call).await.0, 200);
    }
    assert_eq!(
        hers.call(legacy_call(&server, &alice, &session, 4)).await,
        (429, Some("1".to_owned()))
    );
    drop(hers);
    // Her client that reads gets the event whole, though it left in copies
    // of 16 KiB (an SSE event split across frames).
    for attempt in 0.. {
        let (status, body) = legacy_read(&server, &alice, &session).await;
        if status == 200 {
            let data: String = body
                .lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .map(str::trim_start)
                .filter(|d| d.contains("\"result\""))
                .collect();
            let answer: serde_json::Value = serde_json::from_str(&data).unwrap();
            let text = answer["result"]["content"][0]["text"].as_str().unwrap();
            assert_eq!(text.len(), BIG);
            assert!(text.bytes().all(|b| b == b'x'));
            break;
        }
        assert!(status == 429 && attempt < 100, "{status}: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A legacy `big` call over HTTP/1 by a client that reads its answer: the
/// status and the body (an event stream).
async fn legacy_read(server: &Server, token: &str, session: &str) -> (u16, String) {
    server
        .send_reading(legacy_call(server, token, session, 99))
        .await
}

/// A 2025-11-25 session of `token`'s: its id.
async fn legacy_session(server: &Server, token: &str) -> String {
    let client = reqwest::Client::new();
    let response = client
        .post(&server.resource)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("authorization", format!("Bearer {token}"))
        .body(
            r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let session = response.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let _ = response.text().await;
    let response = client
        .post(&server.resource)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("authorization", format!("Bearer {token}"))
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .body(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    session
}

fn legacy_call(server: &Server, token: &str, session: &str, id: u64) -> (http::Request<()>, Bytes) {
    let head = http::Request::post(&server.resource)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .header("mcp-session-id", session)
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap();
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"big","arguments":{{}}}}}}"#
    );
    (head, Bytes::from(body))
}

// A list the layer reads whole and rebuilds (`hide_unauthorized_in_lists`)
// is counted again once rebuilt: the metering of rmcp's answer ends where
// the filter read it.
#[tokio::test]
async fn a_filtered_list_is_counted_as_it_leaves() {
    let server = Server::start_with(true, true).await;
    let alice = server.token("alice");
    let list = |id: u64| {
        let head = http::Request::post(&server.resource)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", MODERN)
            .header("mcp-method", "tools/list")
            .header("authorization", format!("Bearer {alice}"))
            .body(())
            .unwrap();
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/list","params":{{{}}}}}"#,
            support::attack::MODERN_META
        );
        (head, Bytes::from(body))
    };
    // About 121 KB each: two fit her 320,000 bytes, the third does not.
    let mut hers = server.unread_connection().await;
    assert_eq!(hers.call(list(1)).await.0, 200);
    assert_eq!(hers.call(list(2)).await.0, 200);
    assert_eq!(hers.call(list(3)).await, (429, Some("1".to_owned())));
}

// An answer of one copy (4 to 16 KiB) stays counted while its stream is
// stalled (found from outside: the server's HTTP/2 stream took the copy
// whatever the window, and such answers were never counted: 12,000 of them
// for one user, 250 MB).
#[tokio::test]
async fn answers_of_one_copy_stay_counted_while_unread() {
    let server = Server::start().await;
    let alice = server.token("alice");
    let mut hers = server.unread_connection().await;
    // 10,110 bytes or so each: 31 fit her 320,000 bytes.
    let mut statuses = Vec::new();
    for id in 1..=40 {
        statuses.push(hers.call(server.call(&alice, "medium", id)).await.0);
    }
    let served = statuses.iter().filter(|s| **s == 200).count();
    assert!((30..=31).contains(&served), "{statuses:?}");
    assert!(statuses[served..].iter().all(|s| *s == 429), "{statuses:?}");
    drop(hers);
    served_again(&server, &alice).await;
}

// A call whose stream's head leaves before its answer (a notification
// first): rmcp keeps the answer until the client reads, where the layer
// cannot count its bytes, so such streams are counted per user (found from
// outside: 1,000 such calls of one user, left unread on HTTP/2, held
// 490 MB).
#[tokio::test]
async fn streams_whose_head_left_before_their_answer_are_counted_per_user() {
    let server = Server::start().await;
    let (alice, bob) = (server.token("alice"), server.token("bob"));
    let mut hers = server.unread_connection().await;
    for id in 1..=5 {
        assert_eq!(
            hers.call(server.call(&alice, "chatty_big", id)).await.0,
            200
        );
    }
    assert_eq!(
        hers.call(server.call(&alice, "chatty_big", 6)).await,
        (429, Some("1".to_owned()))
    );
    // On another connection too (her user), read at once: the reason.
    let (status, refusal) = server.read_call(&alice, "chatty_big").await;
    assert_eq!(status, 429);
    assert_eq!(refusal["reason"], "too_many_answer_streams_for_principal");
    assert_eq!(refusal["error"], "too_many_answer_streams");
    // Bob is not counted with her; JSON answers of hers are not streams.
    let mut his = server.unread_connection().await;
    assert_eq!(his.call(server.call(&bob, "chatty_big", 1)).await.0, 200);
    assert_eq!(server.read_call(&alice, "small").await.0, 200);
    // Her streams end with their connection: she is served again, her
    // stream read whole.
    drop(hers);
    for attempt in 0.. {
        let (status, text) = server
            .send_reading(server.call(&alice, "chatty_big", 50))
            .await;
        if status == 200 {
            assert!(text.contains(&"x".repeat(BIG)), "the answer, whole");
            break;
        }
        assert!(status == 429 && attempt < 100, "{status}: {text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(his);
}

// With holding off, a legacy answer's head leaves at once and rmcp keeps
// the answer until it is read (found from outside: 1,000 unread
// `list_notes` pages of one user, 587 MB): each counts as a stream.
#[tokio::test]
async fn unheld_legacy_answers_count_as_streams() {
    let server = Server::start_with(false, false).await;
    let alice = server.token("alice");
    let session = legacy_session(&server, &alice).await;
    let mut hers = server.unread_connection().await;
    for id in 1..=5 {
        let call = legacy_call(&server, &alice, &session, id);
        assert_eq!(hers.call(call).await.0, 200);
    }
    assert_eq!(
        hers.call(legacy_call(&server, &alice, &session, 6)).await,
        (429, Some("1".to_owned()))
    );
    let (status, body) = legacy_read(&server, &alice, &session).await;
    assert_eq!(status, 429, "{body}");
    assert!(
        body.contains("too_many_answer_streams_for_principal"),
        "{body}"
    );
}
