//! SSE resumption (`Last-Event-ID`) of a legacy session's request streams
//! against the checks the layer makes on a response: the late step-up (a
//! handler's failed `require_scopes` turns the answer into a 403) and list
//! filtering. rmcp lets a GET with `Last-Event-ID: <index>/<request>` take
//! over the stream of a request still in flight, so the handler's answer
//! would go to that GET, which the layer does not hold or inspect. Real
//! `McpServer`, real `TestIssuer`, raw HTTP on loopback.
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

mod support;

use std::time::Duration;

use mcp_oauth2::testing::TestIssuer;
use mcp_oauth2::{AuthContext, McpServer};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use support::raw_http::{Raw, RawResponse};

const SECRET: &str = "the-exported-secret";

/// One tool that asks for `s:export` mid-call, carries on whatever the
/// answer (the layer still answers 403: "a failed `require_scopes` marks
/// the request even if the handler carries on"), and takes a moment.
#[derive(Clone)]
struct Slow {
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Slow {
    fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }

    #[tool(description = "exports after a while")]
    async fn slow_export(&self, auth: AuthContext) -> String {
        let _ = auth.require_scopes(["s:export"]);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        SECRET.to_owned()
    }

    #[tool(description = "answers after a longer while, needs nothing")]
    async fn slow_echo(&self) -> String {
        tokio::time::sleep(Duration::from_millis(3000)).await;
        "echo".to_owned()
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Slow {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

struct Server {
    addr: std::net::SocketAddr,
    token: String,
    _issuer: TestIssuer,
    ct: tokio_util::sync::CancellationToken,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.ct.cancel();
    }
}

async fn start() -> Server {
    let issuer = TestIssuer::start().await.unwrap();
    let (listener, resource, config) = support::loopback::bind_with_config(&issuer, |b| b).await;
    let addr = listener.local_addr().unwrap();
    let server = McpServer::builder()
        .auth(config)
        .service(|| Ok(Slow::new()))
        .build()
        .unwrap();
    let ct = server.cancellation_token();
    tokio::spawn(server.serve_with_shutdown(listener, std::future::pending()));
    // alice, without `s:export`.
    let token = issuer
        .token()
        .subject("alice")
        .audience(&resource)
        .scopes(["s:read"])
        .sign();
    Server {
        addr,
        token,
        _issuer: issuer,
        ct,
    }
}

impl Server {
    fn post(&self, session: Option<&str>, body: &str) -> Raw {
        let mut raw = Raw::new(self.addr, "POST", "/mcp")
            .header("Authorization", &format!("Bearer {}", self.token))
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream")
            .body(body);
        if let Some(id) = session {
            raw = raw
                .header("Mcp-Session-Id", id)
                .header("MCP-Protocol-Version", "2025-11-25");
        }
        raw
    }

    async fn open_session(&self) -> String {
        let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
        let response = self.post(None, init).send().await.unwrap();
        assert_eq!(response.status, 200, "{}", response.summary());
        let id = response.header("mcp-session-id").unwrap().to_owned();
        let done = self
            .post(
                Some(&id),
                r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            )
            .send()
            .await
            .unwrap();
        assert_eq!(done.status, 202, "{}", done.summary());
        id
    }

    /// A GET resuming after `last_event_id`, read to its end (a resumed
    /// request stream ends with the request; a standalone one is cut off
    /// after `wait`).
    async fn resume(&self, session: &str, last_event_id: &str, wait: Duration) -> RawResponse {
        let mut raw = Raw::new(self.addr, "GET", "/mcp")
            .header("Authorization", &format!("Bearer {}", self.token))
            .header("Accept", "text/event-stream")
            .header("Mcp-Session-Id", session)
            .header("MCP-Protocol-Version", "2025-11-25")
            .header("Last-Event-ID", last_event_id);
        raw.head_only_for_streams = false;
        match tokio::time::timeout(wait, raw.send()).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => RawResponse::failed(&e),
            Err(_) => RawResponse::failed("still open"),
        }
    }
}

const CALL: &str = r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"slow_export","arguments":{}}}"#;

// The late step-up holds without resumption: 403, the secret never sent.
#[tokio::test]
async fn late_step_up_answers_403() {
    let s = start().await;
    let session = s.open_session().await;
    let response = s.post(Some(&session), CALL).send().await.unwrap();
    assert_eq!(response.status, 403, "{}", response.summary());
    assert!(!response.text().contains(SECRET), "{}", response.summary());
}

// MCP "Resumability" is optional for a server; the layer cannot judge a
// request's answer on a stream other than the request's own, so a GET
// naming a request stream in `Last-Event-ID` (`<index>/<request>`) is
// served as a plain GET (the header ignored): the answer of the request in
// flight stays on its own stream, where the late step-up answers 403.
// Before, the GET took the stream over and received the secret (and the
// POST got an empty 200 stream).
#[tokio::test]
async fn resuming_a_request_stream_never_bypasses_the_late_step_up() {
    let s = start().await;
    let session = s.open_session().await;
    let post = {
        let raw = s.post(Some(&session), CALL);
        tokio::spawn(async move { raw.send().await })
    };
    // Let the call reach the handler, then try every early request id.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let resumes = (0..3).map(|k| {
        let s = &s;
        let session = session.clone();
        async move {
            (
                k,
                s.resume(&session, &format!("0/{k}"), Duration::from_secs(4))
                    .await,
            )
        }
    });
    let resumed = futures_util::future::join_all(resumes).await;
    for (k, response) in &resumed {
        assert!(
            !response.text().contains(SECRET),
            "GET Last-Event-ID 0/{k} received the answer the layer refused: {}",
            response.summary()
        );
    }
    let response = post.await.unwrap().unwrap();
    assert_eq!(response.status, 403, "{}", response.summary());
    assert!(!response.text().contains(SECRET), "{}", response.summary());
}

// MCP "Messages": a request id is never reused within a session. rmcp routes
// an answer by its JSON-RPC id, so a second call in flight with the first
// one's id received the first one's answer, judged by the layer as the
// second call's (no failed `require_scopes` there): the secret came back
// with 200.
#[tokio::test]
async fn a_request_id_in_flight_is_not_reused() {
    let s = start().await;
    let session = s.open_session().await;
    let first = {
        let raw = s.post(Some(&session), CALL);
        tokio::spawn(async move { raw.send().await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = s
        .post(
            Some(&session),
            r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"slow_echo","arguments":{}}}"#,
        )
        .send()
        .await
        .unwrap();
    assert!(
        !second.text().contains(SECRET),
        "the second call received the first call's answer: {}",
        second.summary()
    );
    assert_eq!(second.status, 400, "{}", second.summary());
    let body: serde_json::Value = serde_json::from_slice(&second.body).unwrap();
    assert_eq!(body["id"], 5, "{body}");
    assert_eq!(body["error"]["code"], -32600, "{body}");
    assert_eq!(
        body["error"]["data"]["reason"], "request_id_in_use",
        "{body}"
    );
    let first = first.await.unwrap().unwrap();
    assert_eq!(first.status, 403, "{}", first.summary());
    assert!(!first.text().contains(SECRET), "{}", first.summary());
    // Once the first answer is read to its end, the id is free again, and
    // other ids never waited.
    for id in [5, 6] {
        let call = format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"slow_echo","arguments":{{}}}}}}"#
        );
        let response = s.post(Some(&session), &call).send().await.unwrap();
        assert_eq!(response.status, 200, "id {id}: {}", response.summary());
        assert!(response.text().contains("echo"), "{}", response.summary());
    }
}

// A call whose client went away still runs in rmcp, which would route its
// answer by its id: the id stays in use while the handler runs and is free
// again once the handler has answered. Before, it stayed claimed until the
// session ended, so a client that dropped calls (a timeout, a closed tab)
// used its session up: 1,024 such ids, then `too_many_requests_in_flight`
// for every request of the session.
#[tokio::test]
async fn a_dropped_call_frees_its_id_once_its_handler_answers() {
    use tokio::io::AsyncWriteExt;
    let s = start().await;
    let session = s.open_session().await;
    let call = r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"slow_echo","arguments":{}}}"#;
    let ping = r#"{"jsonrpc":"2.0","id":9,"method":"ping"}"#;
    let other = r#"{"jsonrpc":"2.0","id":10,"method":"ping"}"#;
    let started = tokio::time::Instant::now();
    {
        let mut conn = tokio::net::TcpStream::connect(s.addr).await.unwrap();
        conn.write_all(&s.post(Some(&session), call).to_bytes())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Dropped here: the client leaves before any answer.
    }
    let busy = s.post(Some(&session), ping).send().await.unwrap();
    assert_eq!(busy.status, 400, "{}", busy.summary());
    let body: serde_json::Value = serde_json::from_slice(&busy.body).unwrap();
    assert_eq!(
        body["error"]["data"]["reason"], "request_id_in_use",
        "{body}"
    );
    let free = s.post(Some(&session), other).send().await.unwrap();
    assert_eq!(free.status, 200, "{}", free.summary());
    // slow_echo answers 3 s after it started; its id is free from then on.
    let mut last = None;
    while started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let again = s.post(Some(&session), ping).send().await.unwrap();
        if again.status == 200 {
            assert!(
                started.elapsed() >= Duration::from_millis(2900),
                "the id was freed while its call still ran: {}",
                again.summary()
            );
            return;
        }
        last = Some(again.summary());
    }
    panic!("the dropped call's id was never freed: {last:?}");
}

// A call cancelled by its client (`notifications/cancelled`) is forgotten by
// rmcp's routing; if its handler answers anyway, rmcp sends the answer to
// the session's standalone GET stream, which the layer does not judge.
#[tokio::test]
async fn a_cancelled_call_never_answers_on_the_standalone_stream() {
    let s = start().await;
    let session = s.open_session().await;
    let stream = {
        let raw = Raw::new(s.addr, "GET", "/mcp")
            .header("Authorization", &format!("Bearer {}", s.token))
            .header("Accept", "text/event-stream")
            .header("Mcp-Session-Id", &session)
            .header("MCP-Protocol-Version", "2025-11-25");
        let (addr, bytes) = (s.addr, raw.to_bytes());
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
            conn.write_all(&bytes).await.unwrap();
            let mut seen = Vec::new();
            let mut chunk = [0u8; 4096];
            let deadline = tokio::time::Instant::now() + Duration::from_millis(3500);
            while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, conn.read(&mut chunk)).await {
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&chunk[..n]);
            }
            String::from_utf8_lossy(&seen).into_owned()
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let call = {
        let raw = s.post(Some(&session), CALL);
        tokio::spawn(async move { raw.send().await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cancel = s
        .post(
            Some(&session),
            r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":5}}"#,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status, 202, "{}", cancel.summary());
    let call = call.await.unwrap();
    println!("call: {:?}", call.as_ref().map(|r| r.summary()));
    let stream = stream.await.unwrap();
    println!("stream: {stream:?}");
    assert!(stream.starts_with("HTTP/1.1 200"), "{stream}");
    assert!(!stream.contains(SECRET), "{stream}");
    let call = call.unwrap();
    assert!(!call.text().contains(SECRET), "{}", call.summary());
}

// A call cancelled by its client (`notifications/cancelled`) has its
// stream ended by rmcp at once, but its handler runs on (rmcp only
// signals the cancellation). The layer freed the call's id with that
// stream's end, so a second request with the same id was admitted while
// the first handler still ran; rmcp then routed the first handler's
// answer (here: a secret returned after a failed step-up) by the id to
// the second request, which the layer judged as the second request's own
// (no step-up asked) and sent. The id of a call cancelled while in flight
// now stays claimed for the session's life (400 `request_id_in_use`).
#[tokio::test]
async fn a_cancelled_call_keeps_its_id_for_the_session() {
    let s = start().await;
    let session = s.open_session().await;
    let started = tokio::time::Instant::now();
    let first = {
        let raw = s.post(Some(&session), CALL);
        tokio::spawn(async move { raw.send().await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cancel = s
        .post(
            Some(&session),
            r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":5}}"#,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status, 202, "{}", cancel.summary());
    let first = first.await.unwrap().unwrap();
    assert!(!first.text().contains(SECRET), "{}", first.summary());
    // The same id again while the first handler still runs (it answers
    // 1.5 s after it started): refused, or if admitted, never answered
    // with the first call's answer.
    let again = r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"slow_echo","arguments":{}}}"#;
    let second = tokio::time::timeout(
        Duration::from_secs(10),
        s.post(Some(&session), again).send(),
    )
    .await
    .expect("the second call ends")
    .unwrap();
    assert!(!second.text().contains(SECRET), "{}", second.summary());
    assert_eq!(second.status, 400, "{}", second.summary());
    let body: serde_json::Value = serde_json::from_slice(&second.body).unwrap();
    assert_eq!(
        body["error"]["data"]["reason"], "request_id_in_use",
        "{body}"
    );
    // After the first handler has ended the id stays retired (MCP never
    // reuses an id in a session); the session goes on with others.
    tokio::time::sleep(Duration::from_millis(1800).saturating_sub(started.elapsed())).await;
    let ping = |id: u32| format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#);
    let again = s.post(Some(&session), &ping(5)).send().await.unwrap();
    assert_eq!(again.status, 400, "{}", again.summary());
    let other = s.post(Some(&session), &ping(6)).send().await.unwrap();
    assert_eq!(other.status, 200, "{}", other.summary());
}

// The standalone stream's event ids are a 64-bit count: digits past it
// name no event. They are removed as any other id of no standalone event,
// and the GET opens a plain stream that stays open (found from outside:
// rmcp answered them with a stream that ended at once, which an SSE
// client reconnects to in a loop). In-range and malformed ids alike.
#[tokio::test]
async fn a_last_event_id_past_the_count_opens_a_plain_stream() {
    let s = start().await;
    let session = s.open_session().await;
    for last_event_id in [
        "18446744073709551616",
        "99999999999999999999999999",
        "18446744073709551615",
        "1000",
        "abc",
    ] {
        let response = s
            .resume(&session, last_event_id, Duration::from_millis(1500))
            .await;
        assert_eq!(
            response.header("x-client-error"),
            Some("still open"),
            "{last_event_id}: the stream ended: {}",
            response.summary()
        );
    }
}
