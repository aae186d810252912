//! Issue 13: `McpServer`'s header read timeout, the guard against clients
//! that hold connections open by sending a request's headers slowly (or
//! not at all). Raw TCP on loopback against a served `McpServer`: a
//! trickling client is disconnected once the timeout passes, an idle
//! keep-alive connection too, a slow but timely client is answered, and
//! with the guard switched off (the escape hatch) the same trickle is
//! still connected, which is what shows the first test can fail. The
//! reference server, started as the README starts it, applies the 30 s
//! default and `MCP_OAUTH2_HEADER_READ_TIMEOUT`.
//!
//! The body read timeout likewise: a client that sends a head and then
//! stalls or trickles its body is answered HTTP 408 once the limit passes
//! (whether the auth layer reads the body for per-tool scopes or rmcp
//! does), over HTTP/1 and HTTP/2; a client without a token is answered 401
//! at once, without its body being waited for; with the guard off the
//! stalled body is still waited for.
//!
//! HTTP/2 (an `h2` client, and raw bytes for the preface alone): a
//! connection with no request in progress is closed after the header read
//! timeout, one busy with a slow request is kept, and with the guard off
//! an idle one stays.
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mcp_oauth2::testing::TestIssuer;
use mcp_oauth2::{McpServer, McpServerBuilder};
use rmcp::ServerHandler;
use rmcp::model::{ServerCapabilities, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Clone)]
struct Empty;

impl ServerHandler for Empty {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    // The tool the per-tool rule names (`McpServer::build` asks), which
    // makes the layer read each call's body.
    fn get_tool(&self, name: &str) -> Option<rmcp::model::Tool> {
        (name == "anything").then(|| {
            rmcp::model::Tool::new(
                "anything",
                "a tool for a scope rule",
                std::sync::Arc::new(serde_json::Map::from_iter([(
                    "type".to_owned(),
                    serde_json::json!("object"),
                )])),
            )
        })
    }
}

/// A served `McpServer`; stopped when dropped.
struct Running {
    addr: SocketAddr,
    ct: tokio_util::sync::CancellationToken,
    /// The task serving it; its result once stopped.
    serving: tokio::task::JoinHandle<Result<(), mcp_oauth2::Error>>,
    issuer: TestIssuer,
}

impl Running {
    /// A token for this server.
    fn token(&self) -> String {
        token_for(&self.issuer, self.addr)
    }
}

/// A token of `issuer` for the endpoint at `addr`, with the scope the
/// servers of these tests ask for.
fn token_for(issuer: &TestIssuer, addr: SocketAddr) -> String {
    issuer
        .token()
        .audience(format!("http://{addr}/mcp"))
        .scopes(["s:write"])
        .sign()
}

impl Drop for Running {
    fn drop(&mut self) {
        self.ct.cancel();
    }
}

/// A server for `resource` trusting `issuer`, serving `Empty`, with the
/// builder's defaults otherwise.
fn server(issuer: &TestIssuer, resource: &str) -> McpServerBuilder<Empty> {
    scoped_server(issuer, resource, false)
}

/// [`server`], with a per-tool scope when `per_tool` (then the auth layer
/// reads each POST's body; otherwise rmcp alone does).
fn scoped_server(issuer: &TestIssuer, resource: &str, per_tool: bool) -> McpServerBuilder<Empty> {
    let mut config = mcp_oauth2::AuthConfig::builder()
        .issuer(issuer.issuer())
        .resource(resource)
        .allow_insecure_http_for_loopback(true);
    if per_tool {
        config = config.tool_scopes("anything", ["s:write"]);
    }
    McpServer::builder()
        .auth(config.build().expect("config"))
        .service(|| Ok(Empty))
}

/// Serves [`server`] on a loopback port with `tweak` applied.
async fn start_with(
    tweak: impl FnOnce(McpServerBuilder<Empty>) -> McpServerBuilder<Empty>,
) -> Running {
    start_scoped(false, tweak).await
}

/// Serves [`scoped_server`] on a loopback port with `tweak` applied.
async fn start_scoped(
    per_tool: bool,
    tweak: impl FnOnce(McpServerBuilder<Empty>) -> McpServerBuilder<Empty>,
) -> Running {
    let issuer = TestIssuer::start().await.expect("issuer");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tweak(scoped_server(
        &issuer,
        &format!("http://{addr}/mcp"),
        per_tool,
    ))
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

async fn start(timeout: Option<Duration>) -> Running {
    start_with(|b| b.header_read_timeout(timeout)).await
}

/// The head of a POST to the MCP endpoint without a token, up to (not
/// including) the blank line that ends it.
fn head_start(addr: SocketAddr) -> String {
    format!(
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: 2\r\n"
    )
}

/// How a connection ended while the client trickled bytes.
#[derive(Debug)]
enum Outcome {
    /// The server closed (or reset) the connection; what it sent before.
    Closed { after: Duration, sent: Vec<u8> },
    /// Still open when the client stopped trickling.
    Open,
}

/// Sends one byte of a never-ending header line every 100 ms for `for_`,
/// watching for the server to close the connection.
async fn trickle(stream: &mut TcpStream, for_: Duration) -> Outcome {
    let started = Instant::now();
    let mut sent = Vec::new();
    let mut buf = [0u8; 1024];
    stream.write_all(b"X-Slow: ").await.expect("write");
    while started.elapsed() < for_ {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => return Outcome::Closed { after: started.elapsed(), sent },
                Ok(n) => sent.extend_from_slice(&buf[..n]),
            },
            () = tokio::time::sleep(Duration::from_millis(100)) => {
                if stream.write_all(b"a").await.is_err() {
                    return Outcome::Closed { after: started.elapsed(), sent };
                }
            }
        }
    }
    Outcome::Open
}

/// Reads one response head (and what follows in the same reads) within a
/// guard against a hang.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn a_client_trickling_headers_is_disconnected_without_an_answer() {
    let s = start(Some(Duration::from_secs(1))).await;
    let mut stream = TcpStream::connect(s.addr).await.expect("connect");
    stream
        .write_all(head_start(s.addr).as_bytes())
        .await
        .expect("write");
    match trickle(&mut stream, Duration::from_secs(15)).await {
        Outcome::Closed { after, sent } => {
            // Not before the timeout: it is the guard that fired.
            assert!(
                after >= Duration::from_millis(800),
                "closed after {after:?}"
            );
            // Never dispatched: no answer of the layer or of rmcp.
            assert!(
                !String::from_utf8_lossy(&sent).contains("WWW-Authenticate"),
                "{}",
                String::from_utf8_lossy(&sent)
            );
        }
        Outcome::Open => panic!("a client trickling headers for 15 s was still connected"),
    }
    // The server is still serving others.
    let mut other = TcpStream::connect(s.addr).await.expect("connect");
    other
        .write_all(format!("{}Connection: close\r\n\r\n{{}}", head_start(s.addr)).as_bytes())
        .await
        .expect("write");
    let answer = read_response(&mut other).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
}

#[tokio::test]
async fn a_connection_that_never_sends_a_byte_is_disconnected() {
    let s = start(Some(Duration::from_secs(1))).await;
    let mut stream = TcpStream::connect(s.addr).await.expect("connect");
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(15), stream.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "a silent connection was not closed: {read:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(800));
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_disconnected() {
    let s = start(Some(Duration::from_secs(1))).await;
    let mut stream = TcpStream::connect(s.addr).await.expect("connect");
    stream
        .write_all(format!("{}\r\n{{}}", head_start(s.addr)).as_bytes())
        .await
        .expect("write");
    let answer = read_response(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(!answer.to_ascii_lowercase().contains("connection: close"));
    // Kept alive, then idle: closed once the timeout passes.
    let mut buf = [0u8; 4096];
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                // The rest of the 401's body, if it came in a later read.
                Ok(n) => rest.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "an idle keep-alive connection stayed open");
}

#[tokio::test]
async fn a_slow_but_timely_client_is_answered() {
    let s = start(Some(Duration::from_secs(5))).await;
    let mut stream = TcpStream::connect(s.addr).await.expect("connect");
    stream
        .write_all(head_start(s.addr).as_bytes())
        .await
        .expect("write");
    // One second of trickling, well inside the 5 s allowed.
    assert!(matches!(
        trickle(&mut stream, Duration::from_secs(1)).await,
        Outcome::Open
    ));
    stream.write_all(b"\r\n\r\n{}").await.expect("write");
    let answer = read_response(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.contains("resource_metadata="), "{answer}");
}

/// The escape hatch: with the guard off, the trickle of the first test is
/// still connected after three times its timeout, and its request is
/// answered when it ends.
#[tokio::test]
async fn the_guard_can_be_switched_off() {
    let s = start(None).await;
    let mut stream = TcpStream::connect(s.addr).await.expect("connect");
    stream
        .write_all(head_start(s.addr).as_bytes())
        .await
        .expect("write");
    let outcome = trickle(&mut stream, Duration::from_secs(3)).await;
    assert!(matches!(outcome, Outcome::Open), "{outcome:?}");
    stream.write_all(b"\r\n\r\n{}").await.expect("write");
    let answer = read_response(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
}

#[tokio::test]
async fn a_zero_timeout_is_refused() {
    let issuer = TestIssuer::start().await.expect("issuer");
    type Setting = fn(McpServerBuilder<Empty>) -> McpServerBuilder<Empty>;
    let settings: [(&str, Setting); 3] = [
        ("header_read_timeout", |b| {
            b.header_read_timeout(Some(Duration::ZERO))
        }),
        ("body_read_timeout", |b| {
            b.body_read_timeout(Some(Duration::ZERO))
        }),
        ("response_write_timeout", |b| {
            b.response_write_timeout(Some(Duration::ZERO))
        }),
    ];
    for (field, set) in settings {
        let err = set(server(&issuer, "http://127.0.0.1:1/mcp"))
            .build()
            .expect_err("a zero timeout must be refused");
        assert!(err.to_string().contains(field), "{err}");
    }
}

// A timeout past the clock's range made hyper panic in every connection's
// task (`Instant + Duration` overflows: "overflow when adding duration to
// instant"), so a server built with it accepted connections and closed
// each one without an answer. `build` refuses a timeout over 24 hours,
// naming the setting; 24 hours exactly is the control.
#[tokio::test]
async fn a_timeout_past_a_day_is_refused_and_a_day_is_served() {
    let issuer = TestIssuer::start().await.expect("issuer");
    type Setting = fn(McpServerBuilder<Empty>, Duration) -> McpServerBuilder<Empty>;
    let settings: [(&str, Setting); 3] = [
        ("header_read_timeout", |b, d| b.header_read_timeout(Some(d))),
        ("body_read_timeout", |b, d| b.body_read_timeout(Some(d))),
        ("response_write_timeout", |b, d| {
            b.response_write_timeout(Some(d))
        }),
    ];
    let day = Duration::from_secs(86_400);
    for (field, set) in settings {
        for too_long in [
            Duration::MAX,
            Duration::from_secs(u64::MAX),
            day + Duration::from_secs(1),
        ] {
            let err = set(server(&issuer, "http://127.0.0.1:1/mcp"), too_long)
                .build()
                .expect_err("a timeout over a day must be refused");
            assert_eq!(err.field(), field, "{err}");
            assert!(err.message().contains("86400"), "{err}");
        }
    }
    // Served with a day for each: a request is answered (a 401 here).
    let s = start_with(|b| {
        b.header_read_timeout(Some(day))
            .body_read_timeout(Some(day))
            .response_write_timeout(Some(day))
    })
    .await;
    let mut stream = TcpStream::connect(s.addr).await.expect("connect");
    stream
        .write_all(format!("{}\r\n{{}}", head_start(s.addr)).as_bytes())
        .await
        .expect("write");
    let answer = read_response(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    s.ct.cancel();
}

/// A connection waiting for its first byte does not hold a graceful stop
/// up: the server's task ends although the connection never spoke (the
/// default 30 s timeout is far from over).
#[tokio::test]
async fn a_silent_connection_does_not_delay_a_graceful_stop() {
    let mut s = start_with(|b| b).await;
    let addr = s.addr;
    let mut silent = TcpStream::connect(addr).await.expect("connect");
    // Let the server accept it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.ct.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(10), &mut s.serving).await;
    assert!(
        matches!(stopped, Ok(Ok(Ok(())))),
        "the server did not stop: {stopped:?}"
    );
    let mut buf = [0u8; 8];
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
}

/// The reference server as the README runs it, with its `issuer` and
/// `resource` and `extra` variables; its address.
async fn reference(
    issuer: &TestIssuer,
    extra: &[(&str, &str)],
) -> (support::reference::Reference, SocketAddr) {
    let port = support::reference::free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let mut env = vec![
        ("MCP_OAUTH2_ISSUER", issuer.issuer()),
        ("MCP_OAUTH2_RESOURCE", resource.as_str()),
    ];
    env.extend_from_slice(extra);
    let server = support::reference::start(port, &env).await;
    (server, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// Reads until the server closes the connection (or the guard passes);
/// how long that took.
async fn closed_within(stream: &mut TcpStream, guard: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(guard, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    closed.ok().map(|()| started.elapsed())
}

/// What users run: the reference server with no setting closes a silent
/// connection after the 30 s default, not before.
#[tokio::test]
async fn the_reference_server_applies_the_default() {
    let issuer = TestIssuer::start().await.expect("issuer");
    let (_server, addr) = reference(&issuer, &[]).await;
    let mut silent = TcpStream::connect(addr).await.expect("connect");
    let after = closed_within(&mut silent, Duration::from_secs(60))
        .await
        .expect("a silent connection to the reference server stayed open for 60 s");
    assert!(after >= Duration::from_secs(25), "closed after {after:?}");
}

#[tokio::test]
async fn the_reference_server_takes_its_timeout_from_the_environment() {
    let issuer = TestIssuer::start().await.expect("issuer");
    let (_server, addr) = reference(&issuer, &[("MCP_OAUTH2_HEADER_READ_TIMEOUT", "1")]).await;
    let mut silent = TcpStream::connect(addr).await.expect("connect");
    let after = closed_within(&mut silent, Duration::from_secs(15))
        .await
        .expect("a silent connection stayed open");
    assert!(
        after >= Duration::from_millis(800),
        "closed after {after:?}"
    );
    let mut slow = TcpStream::connect(addr).await.expect("connect");
    slow.write_all(head_start(addr).as_bytes())
        .await
        .expect("write");
    assert!(matches!(
        trickle(&mut slow, Duration::from_secs(15)).await,
        Outcome::Closed { .. }
    ));
    // `off`: the same trickle is still connected after three seconds.
    let (_server, addr) = reference(&issuer, &[("MCP_OAUTH2_HEADER_READ_TIMEOUT", "off")]).await;
    let mut slow = TcpStream::connect(addr).await.expect("connect");
    slow.write_all(head_start(addr).as_bytes())
        .await
        .expect("write");
    assert!(matches!(
        trickle(&mut slow, Duration::from_secs(3)).await,
        Outcome::Open
    ));
}

#[tokio::test]
async fn the_reference_server_refuses_a_bad_timeout() {
    let issuer = TestIssuer::start().await.expect("issuer");
    refuses_bad_values(
        &issuer,
        "MCP_OAUTH2_HEADER_READ_TIMEOUT",
        // Blank is unset, the default (`reference_config`,
        // `the_server_s_blank_variables_are_unset`).
        &["0", "-1", "ten", "1.5"],
    )
    .await;
    // The response write timeout's variable (its effect:
    // `tests/slow_readers.rs`) reads the same way.
    refuses_bad_values(
        &issuer,
        "MCP_OAUTH2_RESPONSE_WRITE_TIMEOUT",
        &["0", "soon", "-5", "2.5"],
    )
    .await;
    // Over a day (past the clock's range, the server listened and then
    // every connection's task panicked): refused before listening, naming
    // the variable, for each of the three.
    for variable in [
        "MCP_OAUTH2_HEADER_READ_TIMEOUT",
        "MCP_OAUTH2_BODY_READ_TIMEOUT",
        "MCP_OAUTH2_RESPONSE_WRITE_TIMEOUT",
    ] {
        refuses_bad_values(&issuer, variable, &["18446744073709551615", "86401"]).await;
    }
}

/// The reference server with `variable` set to each of `bad`: it exits
/// before listening, naming the variable.
async fn refuses_bad_values(issuer: &TestIssuer, variable: &str, bad: &[&str]) {
    for bad in bad {
        let output = support::reference::command()
            .env("MCP_OAUTH2_ISSUER", issuer.issuer())
            .env("MCP_OAUTH2_RESOURCE", "http://127.0.0.1:1/mcp")
            .env("MCP_OAUTH2_ALLOW_INSECURE_LOOPBACK", "1")
            .env("MCP_OAUTH2_BIND", "127.0.0.1:0")
            .env(variable, bad)
            .output();
        let output = tokio::time::timeout(Duration::from_secs(30), output)
            .await
            .expect("the server did not exit")
            .expect("run");
        assert!(!output.status.success(), "{bad:?} was accepted");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(!stdout.contains("listening on"), "{bad:?}: {stdout}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(variable), "{bad:?}: {stderr}");
    }
}

/// A `tools/list` call as a 2026-07-28 client sends it.
const LIST: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;

/// The head of an authenticated stateless POST announcing `LIST`'s length,
/// complete with its blank line: the body is up to the caller.
fn body_head(addr: SocketAddr, token: &str) -> String {
    post_head(
        addr,
        "/mcp",
        &format!("Authorization: Bearer {token}\r\n"),
        "",
        LIST.len(),
    )
}

/// A connection that has sent `body_head` and the first ten bytes of the
/// body, and sends nothing more.
async fn open_stalled(addr: SocketAddr, token: &str) -> TcpStream {
    open_stalled_with(addr, &body_head(addr, token)).await
}

/// A connection that has sent `head` and the first ten bytes of `LIST`,
/// and sends nothing more.
async fn open_stalled_with(addr: SocketAddr, head: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(format!("{head}{}", &LIST[..10]).as_bytes())
        .await
        .expect("write");
    stream
}

/// [`open_stalled`]: the answer (head and what came with it) and when it
/// came.
async fn stalled_body(addr: SocketAddr, token: &str) -> (String, Duration, TcpStream) {
    let mut stream = open_stalled(addr, token).await;
    let started = Instant::now();
    let answer = read_response_within(&mut stream, Duration::from_secs(15)).await;
    (answer, started.elapsed(), stream)
}

/// [`read_response`] with its own guard.
async fn read_response_within(stream: &mut TcpStream, guard: Duration) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + guard;
    // The whole answer: the head and the body its `Content-Length`
    // announces (or, without one, the JSON body that follows it).
    while !is_whole(&got) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// `got` holds a whole answer: its head, and its body as long as its
/// `Content-Length` says or, without one, up to a closing brace.
fn is_whole(got: &[u8]) -> bool {
    let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    match length {
        Some(length) => got.len() >= end + 4 + length,
        None => got.ends_with(b"}"),
    }
}

/// The 408 of a timed-out body: status, the JSON error, `Connection:
/// close`, the request id; and then the connection is closed.
async fn assert_timed_out(answer: &str, after: Duration, stream: &mut TcpStream) {
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let lower = answer.to_ascii_lowercase();
    assert!(lower.contains("connection: close"), "{answer}");
    assert!(lower.contains("x-request-id: "), "{answer}");
    assert!(lower.contains("cache-control: no-store"), "{answer}");
    assert!(
        answer.contains(r#""error":"request_timeout""#)
            && answer.contains(r#""reason":"body_read_timeout""#),
        "{answer}"
    );
    // Not before the limit: it is the guard that answered.
    assert!(
        after >= Duration::from_millis(800),
        "answered after {after:?}"
    );
    assert!(
        closed_within(stream, Duration::from_secs(10))
            .await
            .is_some(),
        "the connection stayed open after the 408"
    );
}

#[tokio::test]
async fn a_stalled_body_is_answered_408_when_the_layer_reads_it() {
    let s = start_scoped(true, |b| b.body_read_timeout(Some(Duration::from_secs(1)))).await;
    let (answer, after, mut stream) = stalled_body(s.addr, &s.token()).await;
    assert_timed_out(&answer, after, &mut stream).await;
}

#[tokio::test]
async fn a_stalled_body_is_answered_408_when_rmcp_reads_it() {
    let s = start_scoped(false, |b| b.body_read_timeout(Some(Duration::from_secs(1)))).await;
    let (answer, after, mut stream) = stalled_body(s.addr, &s.token()).await;
    assert_timed_out(&answer, after, &mut stream).await;
}

/// The limit is on the whole body, not between bytes: a byte every 100 ms
/// does not keep the request alive.
#[tokio::test]
async fn a_trickled_body_is_answered_408_at_the_limit() {
    let s = start_scoped(true, |b| b.body_read_timeout(Some(Duration::from_secs(1)))).await;
    let mut stream = TcpStream::connect(s.addr).await.expect("connect");
    stream
        .write_all(body_head(s.addr, &s.token()).as_bytes())
        .await
        .expect("write");
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    for byte in LIST.as_bytes().iter().take(LIST.len() - 1) {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => { got.extend_from_slice(&buf[..n]); break; }
            },
            () = tokio::time::sleep(Duration::from_millis(100)) => {
                if stream.write_all(&[*byte]).await.is_err() {
                    break;
                }
            }
        }
    }
    let after = started.elapsed();
    let rest = read_response_within(&mut stream, Duration::from_secs(10)).await;
    let answer = format!("{}{rest}", String::from_utf8_lossy(&got));
    assert!(
        after < Duration::from_secs(4),
        "still reading after {after:?}"
    );
    assert_timed_out(&answer, after, &mut stream).await;
}

/// A client without a token is refused without its body being waited for
/// (beyond the one-second grace an answer gives the rest of a body its
/// service did not read; the answer then closes the connection).
#[tokio::test]
async fn a_stalled_body_without_a_token_is_refused_at_once() {
    let s = start_scoped(true, |b| b.body_read_timeout(Some(Duration::from_secs(5)))).await;
    let (answer, after, _stream) = stalled_body(s.addr, "").await;
    // `Authorization: Bearer ` with nothing after it: malformed, 400 or 401,
    // either way without waiting for the body.
    assert!(
        answer.starts_with("HTTP/1.1 401") || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );
    assert!(after < Duration::from_secs(4), "answered after {after:?}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    let head = post_head(s.addr, "/mcp", "", "", LIST.len());
    let mut stream = open_stalled_with(s.addr, &head).await;
    let started = Instant::now();
    let answer = read_response_within(&mut stream, Duration::from_secs(15)).await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.contains("resource_metadata="), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(4));
}

/// A body that takes a second inside a five-second limit is read and the
/// call answered; on the same connection, the next call too.
#[tokio::test]
async fn a_slow_but_timely_body_is_answered() {
    let s = start_scoped(true, |b| b.body_read_timeout(Some(Duration::from_secs(5)))).await;
    let mut stream = TcpStream::connect(s.addr).await.expect("connect");
    let token = s.token();
    for _ in 0..2 {
        stream
            .write_all(body_head(s.addr, &token).as_bytes())
            .await
            .expect("write");
        for chunk in LIST.as_bytes().chunks(LIST.len() / 10 + 1) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            stream.write_all(chunk).await.expect("write");
        }
        let answer = read_response_within(&mut stream, Duration::from_secs(10)).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains(r#""tools":[]"#), "{answer}");
    }
}

/// The escape hatch: with the guard off, a stalled body is still waited
/// for after three times the limit of the other tests, and answered when
/// it ends.
#[tokio::test]
async fn the_body_guard_can_be_switched_off() {
    let s = start_scoped(true, |b| b.body_read_timeout(None)).await;
    let mut stream = open_stalled(s.addr, &s.token()).await;
    let mut buf = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buf)).await;
    assert!(early.is_err(), "answered or closed: {early:?}");
    stream
        .write_all(&LIST.as_bytes()[10..])
        .await
        .expect("write");
    let answer = read_response_within(&mut stream, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// HTTP/2 (prior knowledge, as hyper-util serves it next to HTTP/1): a
/// stream whose body stalls is answered 408; the connection's other
/// streams are not disturbed.
#[tokio::test]
async fn a_stalled_http2_body_is_answered_408() {
    let s = start_scoped(true, |b| b.body_read_timeout(Some(Duration::from_secs(1)))).await;
    let (client, _connection) = h2_client(s.addr).await;
    let mut client = client.ready().await.expect("ready");
    let token = s.token();
    let request = || h2_request(&s, &token);
    let (stalled, mut stalled_body) = client.send_request(request(), false).expect("send");
    stalled_body
        .send_data(
            axum::body::Bytes::from_static(&LIST.as_bytes()[..10]),
            false,
        )
        .expect("data");
    let started = Instant::now();
    // Another stream on the same connection, sent whole, is answered.
    let mut client = client.ready().await.expect("ready");
    let (whole, mut whole_body) = client.send_request(request(), false).expect("send");
    whole_body
        .send_data(axum::body::Bytes::from_static(LIST.as_bytes()), true)
        .expect("data");
    let whole = tokio::time::timeout(Duration::from_secs(10), whole)
        .await
        .expect("the whole request was not answered")
        .expect("response");
    assert_eq!(whole.status(), 200);
    let response = tokio::time::timeout(Duration::from_secs(15), stalled)
        .await
        .expect("the stalled stream was not answered")
        .expect("response");
    assert_eq!(response.status(), 408);
    assert!(started.elapsed() >= Duration::from_millis(800));
    let mut body = response.into_body();
    let mut text = Vec::new();
    while let Some(chunk) = body.data().await {
        text.extend_from_slice(&chunk.expect("chunk"));
    }
    let text = String::from_utf8_lossy(&text);
    assert!(text.contains(r#""reason":"body_read_timeout""#), "{text}");
}

/// What users run: the reference server applies `MCP_OAUTH2_BODY_READ_TIMEOUT`
/// (its per-tool scopes make the layer read each body), its 30 s default
/// without it, and refuses a bad value.
#[tokio::test]
async fn the_reference_server_takes_its_body_timeout_from_the_environment() {
    let issuer = TestIssuer::start().await.expect("issuer");
    let (_server, addr) = reference(&issuer, &[("MCP_OAUTH2_BODY_READ_TIMEOUT", "1")]).await;
    let token = issuer
        .token()
        .audience(format!("http://{addr}/mcp"))
        .scopes(["notes:read"])
        .sign();
    let (answer, after, mut stream) = stalled_body(addr, &token).await;
    assert_timed_out(&answer, after, &mut stream).await;
    // The default: still waiting after 5 s (far from 30 s), answered 408 by 60 s.
    let (_server, addr) = reference(&issuer, &[]).await;
    let token = issuer
        .token()
        .audience(format!("http://{addr}/mcp"))
        .scopes(["notes:read"])
        .sign();
    let mut stream = open_stalled(addr, &token).await;
    let started = Instant::now();
    let answer = read_response_within(&mut stream, Duration::from_secs(60)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let after = started.elapsed();
    assert!(after >= Duration::from_secs(25), "answered after {after:?}");
    refuses_bad_values(
        &issuer,
        "MCP_OAUTH2_BODY_READ_TIMEOUT",
        &["0", "soon", "-5"],
    )
    .await;
}

/// An HTTP/2 client on `addr` (prior knowledge); the task driving its
/// connection ends when the server closes it.
async fn h2_client(
    addr: SocketAddr,
) -> (
    h2::client::SendRequest<axum::body::Bytes>,
    tokio::task::JoinHandle<Result<(), h2::Error>>,
) {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (client, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
    (client, tokio::spawn(connection))
}

/// The head of `LIST` over HTTP/2 for `s`, its body up to the caller.
fn h2_request(s: &Running, token: &str) -> http::Request<()> {
    http::Request::post(format!("http://{}/mcp", s.addr))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/list")
        .header("content-length", LIST.len().to_string())
        .body(())
        .expect("request")
}

/// `LIST` over HTTP/2 for `s`, sent whole; its status.
async fn h2_list(client: h2::client::SendRequest<axum::body::Bytes>, s: &Running) -> u16 {
    let mut client = client.ready().await.expect("ready");
    let request = h2_request(s, &s.token());
    let (response, mut body) = client.send_request(request, false).expect("send");
    body.send_data(axum::body::Bytes::from_static(LIST.as_bytes()), true)
        .expect("data");
    let response = tokio::time::timeout(Duration::from_secs(10), response)
        .await
        .expect("no answer")
        .expect("response");
    let status = response.status().as_u16();
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        chunk.expect("chunk");
    }
    status
}

/// HTTP/2 has no header timer in hyper: a connection with no request in
/// progress is closed (GOAWAY) once the header read timeout passes, like
/// an idle HTTP/1 keep-alive connection.
#[tokio::test]
async fn an_idle_http2_connection_is_closed() {
    let s = start_scoped(true, |b| {
        b.header_read_timeout(Some(Duration::from_secs(1)))
    })
    .await;
    let (client, connection) = h2_client(s.addr).await;
    // The client handle is kept: the connection is the server's to close.
    assert_eq!(h2_list(client.clone(), &s).await, 200);
    let idle_from = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(15), connection).await;
    assert!(
        ended.is_ok(),
        "an idle HTTP/2 connection stayed open for 15 s"
    );
    assert!(
        idle_from.elapsed() >= Duration::from_millis(800),
        "closed after {:?}",
        idle_from.elapsed()
    );
}

/// The HTTP/2 preface and settings, then nothing: closed after the limit.
#[tokio::test]
async fn an_http2_preface_alone_is_closed() {
    let s = start(Some(Duration::from_secs(1))).await;
    let mut stream = TcpStream::connect(s.addr).await.expect("connect");
    // RFC 9113 section 3.4: the preface, then an empty SETTINGS frame
    // (length 0, type 4, flags 0, stream 0).
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .expect("write");
    let after = closed_within(&mut stream, Duration::from_secs(15))
        .await
        .expect("a connection that sent only the HTTP/2 preface stayed open");
    assert!(
        after >= Duration::from_millis(800),
        "closed after {after:?}"
    );
}

/// A request in progress keeps its HTTP/2 connection: a body still being
/// sent after three times the limit (the body guard off) is read and
/// answered on the same connection, and only then does the idle clock run.
#[tokio::test]
async fn a_busy_http2_connection_is_kept() {
    let s = start_scoped(true, |b| {
        b.header_read_timeout(Some(Duration::from_secs(1)))
            .body_read_timeout(None)
    })
    .await;
    let (client, mut connection) = h2_client(s.addr).await;
    let mut client = client.ready().await.expect("ready");
    let request = h2_request(&s, &s.token());
    let (response, mut body) = client.send_request(request, false).expect("send");
    body.send_data(
        axum::body::Bytes::from_static(&LIST.as_bytes()[..10]),
        false,
    )
    .expect("data");
    let early = tokio::time::timeout(Duration::from_secs(3), &mut connection).await;
    assert!(
        early.is_err(),
        "a busy HTTP/2 connection was closed: {early:?}"
    );
    body.send_data(axum::body::Bytes::from_static(&LIST.as_bytes()[10..]), true)
        .expect("data");
    let response = tokio::time::timeout(Duration::from_secs(10), response)
        .await
        .expect("no answer")
        .expect("response");
    assert_eq!(response.status(), 200);
    drop(response);
    assert!(
        tokio::time::timeout(Duration::from_secs(15), connection)
            .await
            .is_ok(),
        "the connection stayed open once idle"
    );
}

/// The escape hatch: with the header read timeout off, an idle HTTP/2
/// connection stays open.
#[tokio::test]
async fn an_idle_http2_connection_stays_with_the_guard_off() {
    let s = start_scoped(true, |b| b.header_read_timeout(None)).await;
    let (client, connection) = h2_client(s.addr).await;
    // The client handle is kept: the connection is the server's to close.
    assert_eq!(h2_list(client.clone(), &s).await, 200);
    let ended = tokio::time::timeout(Duration::from_secs(3), connection).await;
    assert!(ended.is_err(), "closed: {ended:?}");
    drop(client);
}

/// The body limit holds on every route the server answers, not only on
/// the endpoint's own spelling: other spellings of the path, paths under
/// it and elsewhere. Each stalled body is answered (a route that reads
/// the body says 408 at the limit; one that does not read it answers
/// after the one-second grace an answer gives the rest of a body, with
/// `Connection: close`), and none is waited for past the limit.
#[tokio::test]
async fn a_stalled_body_is_not_waited_for_on_any_route() {
    let s = start_scoped(true, |b| b.body_read_timeout(Some(Duration::from_secs(1)))).await;
    let token = s.token();
    let mut timed_out = Vec::new();
    for path in [
        "/mcp/",
        "/mcp/x",
        "/mcp//",
        "/%6Dcp",
        "/mcp%2F",
        "/MCP",
        "/mcp?x=1",
        "/.well-known/oauth-protected-resource/mcp",
        "/elsewhere",
    ] {
        let auth = format!("Authorization: Bearer {token}\r\n");
        let head = post_head(s.addr, path, &auth, "", LIST.len());
        let mut stream = open_stalled_with(s.addr, &head).await;
        let started = Instant::now();
        let answer = read_response_within(&mut stream, Duration::from_secs(15)).await;
        let after = started.elapsed();
        assert!(answer.starts_with("HTTP/1.1 "), "{path}: no answer in 15 s");
        if answer.starts_with("HTTP/1.1 408") {
            assert_timed_out(&answer, after, &mut stream).await;
        } else {
            // Answered without the body: after the one-second grace for
            // the rest of it, saying the connection closes.
            assert!(
                after < Duration::from_secs(3),
                "{path}: {after:?}\n{answer}"
            );
            assert!(
                answer.to_ascii_lowercase().contains("connection: close"),
                "{path}: {answer}"
            );
        }
        if answer.starts_with("HTTP/1.1 408") {
            timed_out.push(path);
        }
    }
    // The endpoint itself (its query does not change the route) read the
    // body and timed out; the other spellings are not routed to it.
    assert_eq!(timed_out, ["/mcp?x=1"]);
}

/// The head of a stateless POST of `LIST` to `path` with `auth` (a whole
/// header line or nothing) and `extra` header lines, announcing a body of
/// `length` bytes.
fn post_head(addr: SocketAddr, path: &str, auth: &str, extra: &str, length: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\n\
         Mcp-Method: tools/list\r\n{extra}Content-Length: {length}\r\n\r\n"
    )
}

/// A refusal answered before the request's body arrived (the client wrote
/// the head and the body apart, as the Python SDK does under load) leaves
/// the connection able to serve the next request: the answer reads the
/// body first. Before, hyper closed such a connection after the answer
/// without saying so, and the client's next request on it got no answer.
/// Every kind of early answer: no token, a bad token, a path the endpoint
/// does not serve, a method it does not allow.
#[tokio::test]
async fn a_refusal_before_the_body_keeps_the_connection_usable() {
    let s = start_scoped(true, |b| b).await;
    assert_early_answers_keep_the_connection(s.addr, &s.token(), "McpServer::serve").await;
}

/// When the rest of the body does not come within the grace, or is larger
/// than an answer reads, or the client waits for a go-ahead before
/// sending it (`Expect: 100-continue`), the answer says `Connection:
/// close` (and the connection is closed), so the client knows to open a
/// new one; the large and the `Expect` cases are answered at once.
#[tokio::test]
async fn a_refusal_whose_body_is_not_read_says_connection_close() {
    let s = start_scoped(true, |b| b).await;
    let cases = [
        ("stalled", String::new(), LIST.len(), true),
        ("large", String::new(), 1024 * 1024, false),
        (
            "expect",
            "Expect: 100-continue\r\n".to_owned(),
            LIST.len(),
            false,
        ),
    ];
    for (what, extra, length, waits) in &cases {
        let head = post_head(s.addr, "/mcp", "", extra, *length);
        let mut stream = open_stalled_with(s.addr, &head).await;
        let started = Instant::now();
        let answer = read_response_within(&mut stream, Duration::from_secs(10)).await;
        let after = started.elapsed();
        assert!(answer.starts_with("HTTP/1.1 401"), "{what}: {answer}");
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{what}: {answer}"
        );
        if *waits {
            assert!(after >= Duration::from_millis(800), "{what}: {after:?}");
        }
        assert!(after < Duration::from_secs(5), "{what}: {after:?}");
        assert!(
            closed_within(&mut stream, Duration::from_secs(5))
                .await
                .is_some(),
            "{what}: the connection stayed open"
        );
    }
}

/// An app served with `axum::serve` (not `McpServer::serve`); aborted when
/// dropped.
struct AxumApp {
    addr: SocketAddr,
    issuer: TestIssuer,
    task: tokio::task::JoinHandle<()>,
}

impl AxumApp {
    fn token(&self) -> String {
        token_for(&self.issuer, self.addr)
    }
}

impl Drop for AxumApp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How an [`AxumApp`] is put together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Assembly {
    /// `McpServer::into_router()`, served as it is.
    IntoRouter,
    /// An app of its own: `AuthLayer` around a route, `BodyGuardLayer`
    /// around the whole app.
    LayerWithGuard,
    /// The same app without `BodyGuardLayer` (the control).
    LayerAlone,
}

/// Serves an [`Assembly`] with `axum::serve` on a loopback port; every
/// variant protects `/mcp` with per-tool scopes (the layer reads bodies),
/// and 404s other paths. `body_timeout` is the guard's (where there is one).
async fn start_axum(assembly: Assembly, body_timeout: Option<Duration>) -> AxumApp {
    use axum::routing::post;
    let issuer = TestIssuer::start().await.expect("issuer");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let resource = format!("http://{addr}/mcp");
    let app = match assembly {
        Assembly::IntoRouter => scoped_server(&issuer, &resource, true)
            .body_read_timeout(body_timeout)
            .build()
            .expect("server")
            .into_router(),
        Assembly::LayerWithGuard | Assembly::LayerAlone => {
            let config = mcp_oauth2::AuthConfig::builder()
                .issuer(issuer.issuer())
                .resource(&resource)
                .allow_insecure_http_for_loopback(true)
                .tool_scopes("anything", ["s:write"])
                .build()
                .expect("config");
            // A handler that reads the body, as rmcp would.
            let app = axum::Router::new()
                .route(
                    "/mcp",
                    post(|body: axum::body::Bytes| async move { body.len().to_string() }),
                )
                .layer(mcp_oauth2::AuthLayer::new(config).expect("layer"));
            if assembly == Assembly::LayerWithGuard {
                app.layer(mcp_oauth2::BodyGuardLayer::new().read_timeout(body_timeout))
            } else {
                app
            }
        }
    };
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    AxumApp { addr, issuer, task }
}

/// Sends `head`, waits 200 ms, sends `LIST`; the answer.
async fn head_then_body(stream: &mut TcpStream, head: &str) -> String {
    stream.write_all(head.as_bytes()).await.expect("write");
    tokio::time::sleep(Duration::from_millis(200)).await;
    stream.write_all(LIST.as_bytes()).await.expect("write");
    read_response_within(stream, Duration::from_secs(10)).await
}

/// The next request on a connection that was answered early: an
/// authorized call to the endpoint; its answer ("" when the connection
/// was lost).
async fn next_call(stream: &mut TcpStream, addr: SocketAddr, token: &str) -> String {
    let next = format!("{}{LIST}", body_head(addr, token));
    if stream.write_all(next.as_bytes()).await.is_err() {
        return String::new();
    }
    read_response_within(stream, Duration::from_secs(10)).await
}

/// The kinds of early answer (given before the body is read): no token, a
/// bad token, a path the endpoint does not serve (`/mcp/`, another), a
/// method it does not allow.
fn early_answers(addr: SocketAddr, token: &str) -> Vec<(String, &'static str)> {
    let bearer = format!("Authorization: Bearer {token}\r\n");
    vec![
        (post_head(addr, "/mcp", "", "", LIST.len()), "401"),
        (
            post_head(
                addr,
                "/mcp",
                "Authorization: Bearer not.a.jwt\r\n",
                "",
                LIST.len(),
            ),
            "401",
        ),
        (post_head(addr, "/mcp/", &bearer, "", LIST.len()), "404"),
        (
            post_head(addr, "/elsewhere", &bearer, "", LIST.len()),
            "404",
        ),
        (
            post_head(addr, "/mcp", &bearer, "", LIST.len()).replacen("POST", "PUT", 1),
            "405",
        ),
    ]
}

/// Each early answer of [`early_answers`], given before the body arrived,
/// leaves the connection at `addr` usable: no `Connection: close`, and an
/// authorized call on it next gets 200. `what` names the server.
async fn assert_early_answers_keep_the_connection(addr: SocketAddr, token: &str, what: &str) {
    for (head, status) in early_answers(addr, token) {
        let what = format!("{what} {}", head.lines().next().unwrap_or(""));
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let answer = head_then_body(&mut stream, &head).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{what}: {answer}"
        );
        assert!(
            !answer.to_ascii_lowercase().contains("connection: close"),
            "{what}: {answer}"
        );
        let answer = next_call(&mut stream, addr, token).await;
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "after {what}: {answer:?}"
        );
    }
}

/// A router taken with `into_router` and an app with `AuthLayer` and
/// `BodyGuardLayer`, both served with `axum::serve`, keep a connection
/// usable after each kind of early answer given before the body arrived,
/// as `McpServer::serve` does.
#[tokio::test]
async fn axum_served_apps_keep_the_connection_after_an_early_answer() {
    for assembly in [Assembly::IntoRouter, Assembly::LayerWithGuard] {
        let app = start_axum(assembly, Some(Duration::from_secs(30))).await;
        let what = format!("{assembly:?}");
        assert_early_answers_keep_the_connection(app.addr, &app.token(), &what).await;
    }
}

/// The control: the same app without `BodyGuardLayer` loses the
/// connection after a refusal given before the body arrived (hyper closes
/// it without `Connection: close`), which is what the guard is for.
#[tokio::test]
async fn without_the_guard_an_early_refusal_loses_the_connection() {
    let app = start_axum(Assembly::LayerAlone, None).await;
    let token = app.token();
    let mut stream = TcpStream::connect(app.addr).await.expect("connect");
    let answer = head_then_body(
        &mut stream,
        &post_head(app.addr, "/mcp", "", "", LIST.len()),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(
        !answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    let answer = next_call(&mut stream, app.addr, &token).await;
    assert!(!answer.starts_with("HTTP/1.1 200"), "{answer}");
    // With the guard, the same exchange goes through.
    let app = start_axum(Assembly::LayerWithGuard, None).await;
    let mut stream = TcpStream::connect(app.addr).await.expect("connect");
    let answer = head_then_body(
        &mut stream,
        &post_head(app.addr, "/mcp", "", "", LIST.len()),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    let answer = next_call(&mut stream, app.addr, &app.token()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// The body read timeout holds on routers served with `axum::serve`: a
/// stalled body is answered 408 at the limit (the layer reading it for
/// per-tool scopes), with `Connection: close`, and the connection closed;
/// an early refusal whose body stalls says `Connection: close` after the
/// grace.
#[tokio::test]
async fn axum_served_apps_bound_a_stalled_body() {
    for assembly in [Assembly::IntoRouter, Assembly::LayerWithGuard] {
        let app = start_axum(assembly, Some(Duration::from_secs(1))).await;
        let (answer, after, mut stream) = stalled_body(app.addr, &app.token()).await;
        assert!(
            after >= Duration::from_millis(900),
            "{assembly:?}: {after:?}"
        );
        assert_timed_out(&answer, after, &mut stream).await;
        let head = post_head(app.addr, "/mcp", "", "", LIST.len());
        let mut stream = open_stalled_with(app.addr, &head).await;
        let answer = read_response_within(&mut stream, Duration::from_secs(10)).await;
        assert!(answer.starts_with("HTTP/1.1 401"), "{assembly:?}: {answer}");
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{assembly:?}: {answer}"
        );
        assert!(
            closed_within(&mut stream, Duration::from_secs(5))
                .await
                .is_some(),
            "{assembly:?}: the connection stayed open"
        );
    }
}

// A stop has a last limit: a connection still busy 5 s (the drain grace)
// plus 30 s after the stop is dropped, and the server returns (found from
// outside: a client reading an answer slowly but steadily held the stop as
// long as it liked). Here the body guard is off and the body never comes,
// which held the stop for good before.
#[tokio::test]
async fn a_stop_drops_what_is_still_open_past_its_limit() {
    let mut s = start_scoped(true, |b| b.body_read_timeout(None)).await;
    let mut stream = open_stalled(s.addr, &s.token()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.ct.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(60), &mut s.serving).await;
    assert!(
        matches!(stopped, Ok(Ok(Ok(())))),
        "the server did not stop: {stopped:?}"
    );
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
}

/// A stateless `tools/list` POST on `addr` with `token` and a padding field
/// of `pad` bytes, whole (head and body).
fn padded_list(addr: SocketAddr, token: &str, pad: usize) -> String {
    let head = post_head(
        addr,
        "/mcp",
        &format!("Authorization: Bearer {token}\r\n"),
        &format!("X-Pad: {}\r\n", "p".repeat(pad)),
        LIST.len(),
    );
    format!("{head}{LIST}")
}

/// Sends `request` on a new connection; the response's status line and
/// whether the server closed the connection after it (within 10 s).
async fn status_and_close(addr: SocketAddr, request: &str) -> (String, bool) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    // The server may answer and close before the whole request is written
    // (a head over the limit): a failed write is not the test's failure.
    let _ = stream.write_all(request.as_bytes()).await;
    let answer = read_response(&mut stream).await;
    let status = answer.lines().next().unwrap_or_default().to_owned();
    let closed = answer.to_ascii_lowercase().contains("connection: close")
        || closed_within(&mut stream, Duration::from_secs(10))
            .await
            .is_some();
    (status, closed)
}

/// Found from outside: hyper's own HTTP/1 head bound is about 400 KiB, and
/// a head of 420,000 bytes was served; 600 connections each holding an
/// unfinished 400 KB head took 300 MB. `McpServer` reads at most
/// `max_header_bytes` (16 KiB by default): a head just under it is served,
/// one over it is answered 431 and its connection closed.
#[tokio::test]
async fn a_request_head_over_the_limit_is_answered_431() {
    let s = start_with(|b| b).await;
    let token = s.token();
    let fixed = padded_list(s.addr, &token, 0).len() - LIST.len();
    // The whole head (request line, fields, blank line) just under 16 KiB.
    let (status, _) =
        status_and_close(s.addr, &padded_list(s.addr, &token, 16 * 1024 - fixed - 16)).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    for pad in [16 * 1024, 20_000, 420_000] {
        let (status, closed) = status_and_close(s.addr, &padded_list(s.addr, &token, pad)).await;
        assert!(status.starts_with("HTTP/1.1 431"), "{pad}: {status}");
        assert!(closed, "{pad}: the connection stayed open");
    }
    // Many small fields adding up past the limit: the same.
    let fields: String = (0..200)
        .map(|i| format!("X-F{i}: {}\r\n", "v".repeat(90)))
        .collect();
    let head = post_head(
        s.addr,
        "/mcp",
        &format!("Authorization: Bearer {token}\r\n"),
        &fields,
        LIST.len(),
    );
    let (status, _) = status_and_close(s.addr, &format!("{head}{LIST}")).await;
    assert!(status.starts_with("HTTP/1.1 431"), "{status}");
}

/// What the bound is for: an unfinished head past the limit is not held
/// until the header timeout (memory a client chooses, per connection) but
/// answered at once.
#[tokio::test]
async fn an_unfinished_head_past_the_limit_is_not_held() {
    let s = start_with(|b| b.header_read_timeout(Some(Duration::from_secs(60)))).await;
    let mut streams = Vec::new();
    for _ in 0..20 {
        let mut stream = TcpStream::connect(s.addr).await.expect("connect");
        let mut head = head_start(s.addr);
        head.push_str("X-Big: ");
        head.push_str(&"b".repeat(40_000));
        // No end of line, no blank line: the head never finishes.
        let _ = stream.write_all(head.as_bytes()).await;
        streams.push(stream);
    }
    for stream in &mut streams {
        let answer = read_response(stream).await;
        assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
        assert!(
            closed_within(stream, Duration::from_secs(10))
                .await
                .is_some(),
            "a connection with an unfinished oversized head stayed open"
        );
    }
}

/// The setting: a larger bound serves a larger head (over HTTP/1 and
/// HTTP/2), a smaller one refuses a smaller head, and values hyper cannot
/// take (under 8 KiB, where it would panic) or past 1 MiB are refused by
/// `build`.
#[tokio::test]
async fn the_head_limit_is_a_setting() {
    let s = start_with(|b| b.max_header_bytes(64 * 1024)).await;
    let token = s.token();
    let (status, _) = status_and_close(s.addr, &padded_list(s.addr, &token, 40_000)).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let (status, _) = status_and_close(s.addr, &padded_list(s.addr, &token, 70_000)).await;
    assert!(status.starts_with("HTTP/1.1 431"), "{status}");
    // HTTP/2: a 40 KB header list is served under the 64 KiB bound (over
    // the 16 KiB default of hyper, so the setting reaches HTTP/2 too).
    let (client, _connection) = h2_client(s.addr).await;
    let mut client = client.ready().await.expect("ready");
    let mut request = h2_request(&s, &token);
    request.headers_mut().insert(
        "x-pad",
        http::HeaderValue::from_str(&"p".repeat(40_000)).expect("value"),
    );
    let (response, mut body) = client.send_request(request, false).expect("send");
    body.send_data(axum::body::Bytes::from_static(LIST.as_bytes()), true)
        .expect("data");
    let response = tokio::time::timeout(Duration::from_secs(10), response)
        .await
        .expect("no answer")
        .expect("response");
    assert_eq!(response.status(), 200);

    let small = start_with(|b| b.max_header_bytes(8 * 1024)).await;
    let token = small.token();
    let (status, _) = status_and_close(small.addr, &padded_list(small.addr, &token, 6_000)).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let (status, _) = status_and_close(small.addr, &padded_list(small.addr, &token, 9_000)).await;
    assert!(status.starts_with("HTTP/1.1 431"), "{status}");
    // HTTP/2 under the same small bound: a 9 KB header list does not run.
    let (client, _connection) = h2_client(small.addr).await;
    let refused = async {
        let mut client = client.ready().await?;
        let mut request = h2_request(&small, &token);
        request.headers_mut().insert(
            "x-pad",
            http::HeaderValue::from_str(&"p".repeat(9_000)).expect("value"),
        );
        let (response, mut body) = client.send_request(request, false)?;
        body.send_data(axum::body::Bytes::from_static(LIST.as_bytes()), true)?;
        response.await.map(|r| r.status().as_u16())
    };
    let outcome = tokio::time::timeout(Duration::from_secs(10), refused)
        .await
        .expect("no answer");
    // hyper answers 431 on the stream (found from outside; the docs had
    // said the connection ends).
    assert!(matches!(outcome, Ok(431)), "{outcome:?}");

    let issuer = TestIssuer::start().await.expect("issuer");
    for bytes in [0, 8 * 1024 - 1, 1024 * 1024 + 1, usize::MAX] {
        let err = server(&issuer, "http://127.0.0.1:1/mcp")
            .max_header_bytes(bytes)
            .build()
            .expect_err("an impossible head limit was accepted");
        assert_eq!(err.field(), "max_header_bytes", "{bytes}");
    }
    for bytes in [8 * 1024, 1024 * 1024] {
        server(&issuer, "http://127.0.0.1:1/mcp")
            .max_header_bytes(bytes)
            .build()
            .expect("a head limit in range");
    }
}

/// What users run: the reference server's head limit is 16 KiB unless
/// `MCP_OAUTH2_MAX_HEADER_BYTES` says otherwise, and a value out of range
/// or not a number stops it before it listens, naming the variable.
#[tokio::test]
async fn the_reference_server_takes_its_head_limit_from_the_environment() {
    let issuer = TestIssuer::start().await.expect("issuer");
    let (_server, addr) = reference(&issuer, &[]).await;
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut head = head_start(addr);
    head.push_str(&format!("X-Pad: {}\r\n\r\n{{}}", "p".repeat(20_000)));
    let _ = stream.write_all(head.as_bytes()).await;
    let answer = read_response(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");

    let (_server, addr) = reference(&issuer, &[("MCP_OAUTH2_MAX_HEADER_BYTES", "65536")]).await;
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut head = head_start(addr);
    head.push_str(&format!("X-Pad: {}\r\n\r\n{{}}", "p".repeat(20_000)));
    let _ = stream.write_all(head.as_bytes()).await;
    let answer = read_response(&mut stream).await;
    // Read past the head limit: the layer's own answer (no token).
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");

    refuses_bad_values(
        &issuer,
        "MCP_OAUTH2_MAX_HEADER_BYTES",
        &[
            "8191",
            "1048577",
            "0",
            "16k",
            "-1",
            "99999999999999999999999",
        ],
    )
    .await;
}

/// What users run, attacked as found from outside: the reference server
/// with a valid token and a 4 MB `tools/call whoami` of two million `0`s
/// answers 413 `body_too_complex` without handing the body to rmcp (it
/// took 450 MB of memory there), and still serves the caller.
#[tokio::test]
async fn the_reference_server_refuses_a_body_of_millions_of_values() {
    let issuer = TestIssuer::start().await.expect("issuer");
    let (_server, addr) = reference(&issuer, &[]).await;
    let token = issuer.token().audience(format!("http://{addr}/mcp")).sign();
    let mut call = String::from(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}},"name":"whoami","arguments":{"x":["#,
    );
    call.push_str(&"0,".repeat(2_000_000));
    call.push_str("0]}}}");
    let http = reqwest::Client::new();
    let send = |body: String| {
        http.post(format!("http://{addr}/mcp"))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", "whoami")
            .body(body)
            .send()
    };
    let response = send(call).await.expect("send");
    assert_eq!(response.status(), 413);
    let v: serde_json::Value = response.json().await.expect("json");
    assert_eq!(v["reason"], "body_too_complex", "{v}");
    let whoami = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}},"name":"whoami","arguments":{}}}"#;
    let response = send(whoami.to_owned()).await.expect("send");
    assert_eq!(response.status(), 200);
}
