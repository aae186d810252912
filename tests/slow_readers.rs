//! The response write timeout of `McpServer::serve`: a client that sends a
//! request and then stops reading its answer must not hold the connection
//! (and the task and the unsent answer) forever.
//!
//! Raw TCP on loopback with a small receive buffer, and an `h2` client, in
//! front of a served `McpServer` whose one tool answers 8 MiB (more than
//! the server's socket buffer can take: its writes have to wait):
//! - HTTP/1: a client that reads nothing is disconnected with its answer
//!   unfinished; a client that reads slowly but keeps up gets all of it
//!   although it takes several limits; with the guard off (the control)
//!   the same stalled client gets its whole answer once it reads.
//! - HTTP/2: a client that grants no flow-control window (its connection
//!   still answers pings) is disconnected; one that grants window slowly is
//!   served whole; with the guard off it stays connected.
//! - A graceful stop does not wait for an HTTP/2 peer that keeps its
//!   connection open after the GOAWAY.
//! - The reference server, as the README runs it, takes the limit from
//!   `MCP_OAUTH2_RESPONSE_WRITE_TIMEOUT` (its bad values and a zero limit
//!   are refused: `tests/slow_clients.rs`, with the other timeouts).
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use mcp_oauth2::testing::TestIssuer;
use mcp_oauth2::{McpServer, McpServerBuilder};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The size of the big answer's text: well over what the server's socket
/// buffer takes (`tcp_wmem` allows up to 4 MiB) plus a small client
/// window.
const BIG: usize = 8 * 1024 * 1024;

#[derive(Clone)]
struct Big {
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Big {
    #[tool(description = "Answers 8 MiB of text")]
    async fn big(&self) -> String {
        "x".repeat(BIG)
    }

    #[tool(description = "Answers a few bytes")]
    async fn small(&self) -> String {
        "small".to_owned()
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Big {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

/// A served `McpServer`; stopped when dropped.
struct Running {
    addr: SocketAddr,
    ct: tokio_util::sync::CancellationToken,
    serving: tokio::task::JoinHandle<Result<(), mcp_oauth2::Error>>,
    issuer: TestIssuer,
}

impl Running {
    fn token(&self) -> String {
        self.issuer
            .token()
            .audience(format!("http://{}/mcp", self.addr))
            .sign()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.ct.cancel();
    }
}

/// Serves `Big` on a loopback port with `tweak` applied to the builder's
/// defaults.
async fn start_with(tweak: impl FnOnce(McpServerBuilder<Big>) -> McpServerBuilder<Big>) -> Running {
    let issuer = TestIssuer::start().await.expect("issuer");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let config = mcp_oauth2::AuthConfig::builder()
        .issuer(issuer.issuer())
        .resource(format!("http://{addr}/mcp"))
        .allow_insecure_http_for_loopback(true)
        .build()
        .expect("config");
    let server = tweak(McpServer::builder().auth(config).service(|| {
        Ok(Big {
            tool_router: Big::tool_router(),
        })
    }))
    .build()
    .expect("server");
    let ct = server.cancellation_token();
    let serving = tokio::spawn(server.serve_with_shutdown(listener, std::future::pending()));
    Running {
        addr,
        ct,
        serving,
        issuer,
    }
}

/// [`start_with`] with a response write timeout of `limit`.
async fn start(limit: Option<Duration>) -> Running {
    start_with(|b| b.response_write_timeout(limit)).await
}

const LIMIT: Duration = Duration::from_secs(1);

/// A stateless 2026-07-28 `tools/call` of `tool`.
fn call_body(tool: &str) -> String {
    support::attack::modern_tool_call_body(1, tool)
}

/// The whole HTTP/1.1 request calling `tool` with `token`.
fn call_request(addr: SocketAddr, token: &str, tool: &str) -> String {
    let body = call_body(tool);
    format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
         MCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\nMcp-Name: {tool}\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// A connection to `addr` with a receive buffer of about `bytes` (the
/// kernel doubles it), so that the client's window stays small.
async fn connect_with_window(addr: SocketAddr, bytes: u32) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(bytes).expect("SO_RCVBUF");
    socket.connect(addr).await.expect("connect")
}

/// What a client read of its answer.
#[derive(Debug)]
struct Read {
    bytes: usize,
    /// The whole answer came (its `Content-Length`, or the last chunk of a
    /// chunked one).
    complete: bool,
    /// The server closed the connection.
    closed: bool,
}

/// Follows one HTTP/1.1 answer as its bytes come.
#[derive(Default)]
struct Answer {
    head: Vec<u8>,
    /// Bytes after the head; `None` until the head is whole.
    body: Option<usize>,
    length: Option<usize>,
    tail: Vec<u8>,
    bytes: usize,
}

impl Answer {
    fn take(&mut self, mut got: &[u8]) {
        self.bytes += got.len();
        if self.body.is_none() {
            let before = self.head.len();
            self.head.extend_from_slice(got);
            let Some(end) = self.head.windows(4).position(|w| w == b"\r\n\r\n") else {
                return;
            };
            let head = String::from_utf8_lossy(&self.head[..end]).to_ascii_lowercase();
            self.length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().expect("content-length"));
            got = &got[end + 4 - before..];
            self.head.truncate(end + 4);
            self.body = Some(0);
        }
        if let Some(body) = &mut self.body {
            *body += got.len();
        }
        self.tail.extend_from_slice(got);
        let keep = self.tail.len().saturating_sub(16);
        self.tail.drain(..keep);
    }

    fn complete(&self) -> bool {
        match (self.body, self.length) {
            (Some(body), Some(length)) => body >= length,
            (Some(_), None) => self.tail.ends_with(b"\r\n0\r\n\r\n"),
            _ => false,
        }
    }
}

/// Reads until the answer is complete, the server closes, or `guard`
/// passes.
async fn read_answer(stream: &mut TcpStream, guard: Duration) -> Read {
    let mut answer = Answer::default();
    let mut buf = vec![0u8; 256 * 1024];
    let deadline = Instant::now() + guard;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let closed = match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => true,
            Ok(Ok(n)) => {
                answer.take(&buf[..n]);
                if !answer.complete() {
                    continue;
                }
                false
            }
            Err(_) => false,
        };
        return Read {
            bytes: answer.bytes,
            complete: answer.complete(),
            closed,
        };
    }
}

/// Reads pipelined answers until `n` have begun, the server closes, or
/// `guard` passes: how many began (status lines seen; the notes' text never
/// holds one), and whether the server closed.
async fn read_pipelined(stream: &mut TcpStream, n: usize, guard: Duration) -> (usize, bool) {
    const STATUS: &[u8] = b"HTTP/1.1 200 OK\r\n";
    let mut answers = 0;
    // The end of what was read before, shorter than a status line: a match
    // found in it and the new bytes ends in the new bytes, counted once.
    let mut carry: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    let deadline = Instant::now() + guard;
    while answers < n {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (answers, true),
            Ok(Ok(read)) => {
                carry.extend_from_slice(&buf[..read]);
                answers += carry.windows(STATUS.len()).filter(|w| *w == STATUS).count();
                let keep = carry.len().saturating_sub(STATUS.len() - 1);
                carry.drain(..keep);
            }
            Err(_) => return (answers, false),
        }
    }
    (answers, false)
}

/// Sends a call of `big` on a connection with a small window, then reads
/// nothing for `wait`; what reading afterwards gets.
async fn call_big_and_stall(s: &Running, wait: Duration) -> Read {
    let mut stream = connect_with_window(s.addr, 16 * 1024).await;
    stream
        .write_all(call_request(s.addr, &s.token(), "big").as_bytes())
        .await
        .expect("write");
    tokio::time::sleep(wait).await;
    read_answer(&mut stream, Duration::from_secs(30)).await
}

#[tokio::test]
async fn an_http1_client_that_stops_reading_is_disconnected() {
    let s = start(Some(LIMIT)).await;
    let read = call_big_and_stall(&s, LIMIT * 4).await;
    assert!(read.closed, "{read:?}");
    assert!(!read.complete, "{read:?}");
    // The head and part of the answer were sent before the stall.
    assert!(read.bytes > 0, "{read:?}");
    assert!(read.bytes < BIG, "{read:?}");
    // The server still serves others.
    let mut other = TcpStream::connect(s.addr).await.expect("connect");
    other
        .write_all(call_request(s.addr, &s.token(), "small").as_bytes())
        .await
        .expect("write");
    let answer = read_answer(&mut other, Duration::from_secs(10)).await;
    assert!(answer.complete, "{answer:?}");
}

/// The control: with the guard off, the same stalled client is still
/// connected after the same wait, and gets its whole answer once it reads.
#[tokio::test]
async fn with_the_guard_off_a_stalled_reader_keeps_its_connection() {
    let s = start(None).await;
    let read = call_big_and_stall(&s, LIMIT * 4).await;
    assert!(read.complete && !read.closed, "{read:?}");
    assert!(read.bytes > BIG, "{read:?}");
}

/// The default applies with no setting: a stalled reader is still
/// connected well within 30 s (and so gets its answer), which shows the
/// one-second limit above is the setting's doing.
#[tokio::test]
async fn the_default_limit_is_longer_than_a_short_stall() {
    let s = start_with(|b| b).await;
    let read = call_big_and_stall(&s, LIMIT * 4).await;
    assert!(read.complete && !read.closed, "{read:?}");
}

/// The limit is on the time between two writes, not on the whole answer:
/// a client reading 512 KiB every 200 ms takes about three limits to read
/// 8 MiB, and gets all of it.
#[tokio::test]
async fn a_slow_http1_reader_that_keeps_up_is_served() {
    let s = start(Some(LIMIT)).await;
    let mut stream = connect_with_window(s.addr, 256 * 1024).await;
    stream
        .write_all(call_request(s.addr, &s.token(), "big").as_bytes())
        .await
        .expect("write");
    let started = Instant::now();
    let mut answer = Answer::default();
    let mut buf = vec![0u8; 64 * 1024];
    'reading: loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut this_round = 0usize;
        while this_round < 512 * 1024 {
            let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
                .await
                .expect("the server stopped sending")
                .expect("read");
            assert!(n > 0, "closed after {} bytes", answer.bytes);
            this_round += n;
            answer.take(&buf[..n]);
            if answer.complete() {
                break 'reading;
            }
        }
    }
    let bytes = answer.bytes;
    assert!(bytes > BIG);
    // It did take longer than one limit: the test shows what it says.
    assert!(started.elapsed() > LIMIT * 2, "{:?}", started.elapsed());
}

/// An HTTP/2 client (prior knowledge) with `window` bytes of stream and
/// connection window; the task driving its connection ends when the
/// server closes it.
async fn h2_client(
    addr: SocketAddr,
    window: u32,
) -> (
    h2::client::SendRequest<Bytes>,
    tokio::task::JoinHandle<Result<(), h2::Error>>,
) {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (client, connection) = h2::client::Builder::new()
        .initial_window_size(window)
        .initial_connection_window_size(window.max(65_535))
        .handshake(tcp)
        .await
        .expect("h2 handshake");
    (client, tokio::spawn(connection))
}

/// Calls `tool` over HTTP/2; the response's body.
async fn h2_call(
    client: h2::client::SendRequest<Bytes>,
    s: &Running,
    tool: &str,
) -> h2::RecvStream {
    h2_call_as(client, s, tool, Some(&s.token()), 200).await
}

/// Calls `tool` over HTTP/2 with `token` (none: no `Authorization`),
/// expecting `status`; the response's body.
async fn h2_call_as(
    client: h2::client::SendRequest<Bytes>,
    s: &Running,
    tool: &str,
    token: Option<&str>,
    status: u16,
) -> h2::RecvStream {
    let mut client = client.ready().await.expect("ready");
    let body = call_body(tool);
    let mut request = http::Request::post(format!("http://{}/mcp", s.addr));
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", tool)
        .body(())
        .expect("request");
    let (response, mut send) = client.send_request(request, false).expect("send");
    send.send_data(Bytes::from(body), true).expect("data");
    let response = tokio::time::timeout(Duration::from_secs(10), response)
        .await
        .expect("no answer")
        .expect("response");
    assert_eq!(response.status(), status);
    response.into_body()
}

/// [`start_with`] with a response write timeout of `limit`, answering
/// with an event stream when `sse` (a call whose handler streams progress
/// gets one; the body then stays open between events) and with JSON (the
/// default) otherwise.
async fn start_mode(limit: Option<Duration>, sse: bool) -> Running {
    start_with(|b| {
        b.response_write_timeout(limit)
            .rmcp_config(|c| c.with_json_response(!sse))
    })
    .await
}

/// The client never takes the body (no WINDOW_UPDATE past the first
/// 64 KiB, or a stream window of zero from the start) while its connection
/// keeps answering pings: dropped, whether the answer is one JSON document
/// or an event stream, large or of one frame, or the 401 of a request
/// without a token (found from outside: a one-frame answer at a window of
/// zero held its connection for good, since hyper takes a frame before it
/// waits for window; without a token too, so that anyone could hold every
/// connection slot).
#[tokio::test]
async fn an_http2_client_that_grants_no_window_is_disconnected() {
    let cases = [
        (false, 65_535, "big", true),
        (true, 65_535, "big", true),
        (false, 0, "big", true),
        (true, 0, "big", true),
        (false, 0, "small", true),
        (true, 0, "small", true),
        (false, 0, "small", false),
    ];
    for (sse, window, tool, token) in cases {
        let s = start_mode(Some(LIMIT), sse).await;
        let (client, connection) = h2_client(s.addr, window).await;
        let (token, status) = if token {
            (Some(s.token()), 200)
        } else {
            (None, 401)
        };
        let _body = h2_call_as(client.clone(), &s, tool, token.as_deref(), status).await;
        let stalled_from = Instant::now();
        let ended = tokio::time::timeout(Duration::from_secs(15), connection).await;
        let case = format!("sse {sse}, window {window}, {tool}, status {status}");
        assert!(
            ended.is_ok(),
            "{case}: the stalled connection stayed open 15 s"
        );
        assert!(
            stalled_from.elapsed() >= LIMIT * 8 / 10,
            "{case}: closed after {:?}",
            stalled_from.elapsed()
        );
    }
}

/// The control: with the guard off the same client stays connected.
#[tokio::test]
async fn with_the_guard_off_an_http2_client_granting_no_window_stays() {
    for sse in [false, true] {
        let s = start_mode(None, sse).await;
        let (client, connection) = h2_client(s.addr, 65_535).await;
        let _body = h2_call(client.clone(), &s, "big").await;
        let ended = tokio::time::timeout(LIMIT * 4, connection).await;
        assert!(ended.is_err(), "sse {sse}: closed: {ended:?}");
    }
}

/// A client granting window slowly (512 KiB every 200 ms) gets the whole
/// answer, although it takes several limits; the connection then serves
/// another call. Both response modes.
#[tokio::test]
async fn a_slow_http2_reader_that_keeps_up_is_served() {
    for sse in [false, true] {
        let s = start_mode(Some(LIMIT), sse).await;
        let (client, connection) = h2_client(s.addr, 512 * 1024).await;
        let started = Instant::now();
        let mut body = h2_call(client.clone(), &s, "big").await;
        let mut bytes = 0usize;
        while let Some(chunk) = tokio::time::timeout(Duration::from_secs(10), body.data())
            .await
            .expect("the server stopped sending")
        {
            let chunk = chunk.expect("chunk");
            bytes += chunk.len();
            // Window comes back in steps: at most 512 KiB per 200 ms.
            if bytes % (512 * 1024) < chunk.len() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            body.flow_control()
                .release_capacity(chunk.len())
                .expect("release");
        }
        assert!(bytes > BIG, "sse {sse}: {bytes}");
        assert!(
            started.elapsed() > LIMIT * 2,
            "sse {sse}: {:?}",
            started.elapsed()
        );
        let mut small = h2_call(client, &s, "small").await;
        while let Some(chunk) = small.data().await {
            chunk.expect("chunk");
        }
        assert!(!connection.is_finished(), "sse {sse}");
    }
}

/// A graceful stop does not wait for an HTTP/2 connection whose peer
/// keeps it open after the GOAWAY and never answers the server's ping
/// (hyper alone waits for its keep-alive timeout, over a minute): it is
/// dropped after a short grace. The peer here sent the preface and its
/// settings, as a pooled connection does before its first request, and
/// reads (and ignores) whatever comes.
#[tokio::test]
async fn a_graceful_stop_does_not_wait_for_an_http2_peer_ignoring_goaway() {
    let mut s = start_with(|b| b).await;
    let mut stream = TcpStream::connect(s.addr).await.expect("connect");
    // RFC 9113 section 3.4: the preface, then an empty SETTINGS frame
    // (length 0, type 4, flags 0, stream 0).
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .expect("write");
    let (mut reading, _writing) = stream.into_split();
    let ignoring = tokio::spawn(async move {
        let mut buf = [0u8; 1024];
        while matches!(reading.read(&mut buf).await, Ok(n) if n > 0) {}
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopping = Instant::now();
    s.ct.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(15), &mut s.serving).await;
    assert!(
        matches!(stopped, Ok(Ok(Ok(())))),
        "the server did not stop within 15 s: {stopped:?}"
    );
    // Not at once either: the peer had its grace.
    assert!(
        stopping.elapsed() >= Duration::from_secs(4),
        "stopped after {:?}",
        stopping.elapsed()
    );
    tokio::time::timeout(Duration::from_secs(5), ignoring)
        .await
        .expect("the connection stayed open after the stop")
        .expect("reader");
}

/// A well-behaved HTTP/2 client that made a call and keeps its handle
/// does not hold a graceful stop up either.
#[tokio::test]
async fn a_graceful_stop_closes_an_http2_client_after_its_call() {
    let mut s = start_with(|b| b).await;
    let (client, connection) = h2_client(s.addr, 65_535).await;
    let mut small = h2_call(client.clone(), &s, "small").await;
    while let Some(chunk) = small.data().await {
        chunk.expect("chunk");
    }
    s.ct.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(15), &mut s.serving).await;
    assert!(
        matches!(stopped, Ok(Ok(Ok(())))),
        "the server did not stop within 15 s: {stopped:?}"
    );
    tokio::time::timeout(Duration::from_secs(5), connection)
        .await
        .expect("the client's connection stayed open after the stop")
        .ok();
    drop(client);
}

/// What users run: the reference server with
/// `MCP_OAUTH2_RESPONSE_WRITE_TIMEOUT=1` drops a client that stops reading
/// `list_notes` answers (pipelined: one is a page of at most 64 KiB of
/// text); with `off` the client is kept and gets every answer.
#[tokio::test]
async fn the_reference_server_takes_its_write_timeout_from_the_environment() {
    let issuer = TestIssuer::start().await.expect("issuer");
    for (value, dropped) in [("1", true), ("off", false)] {
        let port = support::reference::free_port();
        let resource = format!("http://127.0.0.1:{port}/mcp");
        let _server = support::reference::start(
            port,
            &[
                ("MCP_OAUTH2_ISSUER", issuer.issuer()),
                ("MCP_OAUTH2_RESOURCE", resource.as_str()),
                ("MCP_OAUTH2_RESPONSE_WRITE_TIMEOUT", value),
            ],
        )
        .await;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let token = issuer
            .token()
            .audience(resource.as_str())
            .scopes(["notes:write", "notes:private"])
            .sign();
        // 640 notes of 16 KiB (the reference server's largest note): pages
        // of 64 KiB, 160 of them pipelined are 10 MiB, past what the sockets
        // buffer.
        let text = "n".repeat(16 * 1024);
        for _ in 0..640 {
            let body = format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"add_note","arguments":{{"text":"{text}"}},{}}}}}"#,
                support::attack::MODERN_META
            );
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            let head = format!(
                "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
                 Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
                 MCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\nMcp-Name: add_note\r\n\
                 Content-Length: {}\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).await.expect("write");
            stream.write_all(body.as_bytes()).await.expect("write");
            let answer = read_answer(&mut stream, Duration::from_secs(30)).await;
            assert!(answer.complete, "add_note: {answer:?}");
        }
        let mut stream = connect_with_window(addr, 16 * 1024).await;
        const PIPELINED: usize = 160;
        let body = support::attack::modern_tool_call_body(2, "list_notes");
        let head = format!(
            "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
             MCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\nMcp-Name: list_notes\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream
            .write_all(head.repeat(PIPELINED).as_bytes())
            .await
            .expect("write");
        tokio::time::sleep(Duration::from_secs(4)).await;
        let (answers, closed) =
            read_pipelined(&mut stream, PIPELINED, Duration::from_secs(30)).await;
        if dropped {
            assert!(closed && answers < PIPELINED, "{value}: {answers} answers");
        } else {
            assert!(
                !closed && answers == PIPELINED,
                "{value}: {answers} answers"
            );
        }
    }
}
