//! `McpServer`'s connection limit (`max_connections`,
//! `MCP_OAUTH2_MAX_CONNECTIONS`) and its accept loop under descriptor
//! exhaustion, on real loopback sockets: connections past the limit wait
//! in the listen backlog and are served once one closes (HTTP/1.1 and
//! HTTP/2), a silent connection holds its slot only for the header read
//! timeout, handlers of HTTP/1.1 calls whose client hung up count against
//! the limit until they end (an in-process slow tool, and the reference
//! server's `downstream_whoami` against a token endpoint that never
//! answers), and the reference server, run with a low `RLIMIT_NOFILE`,
//! neither spins nor floods its log when accepts fail.
// Test code: a panic here is a failed run, not an outage.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mcp_oauth2::McpServer;
use mcp_oauth2::testing::TestIssuer;
use support::attack::{MODERN, modern_tool_call_body};
use support::raw_http::Raw;
use support::slow_tools::{Count, Slow};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A served `McpServer` of [`Slow`]; stopped when dropped.
struct Running {
    addr: SocketAddr,
    resource: String,
    token: String,
    count: Arc<Count>,
    ct: tokio_util::sync::CancellationToken,
    _issuer: TestIssuer,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.ct.cancel();
    }
}

/// Serves [`Slow`] on a loopback port with at most `limit` connections and
/// `tweak` applied.
async fn start(
    limit: usize,
    tweak: impl FnOnce(mcp_oauth2::McpServerBuilder<Slow>) -> mcp_oauth2::McpServerBuilder<Slow>,
) -> Running {
    let issuer = TestIssuer::start().await.unwrap();
    let (listener, resource, config) = support::loopback::bind_with_config(&issuer, |b| b).await;
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(Count::default());
    let shared = Arc::clone(&count);
    let server = tweak(
        McpServer::builder()
            .auth(config)
            .service(move || Ok(Slow::new(&shared, Duration::from_secs(3))))
            .max_connections(limit),
    )
    .build()
    .unwrap();
    let ct = server.cancellation_token();
    tokio::spawn(server.serve_with_shutdown(listener, std::future::pending()));
    let token = issuer.token().audience(&resource).sign();
    Running {
        addr,
        resource,
        token,
        count,
        ct,
        _issuer: issuer,
    }
}

impl Running {
    /// A keep-alive GET of the metadata document (no token needed).
    fn metadata(&self) -> Raw {
        Raw::new(
            self.addr,
            "GET",
            "/.well-known/oauth-protected-resource/mcp",
        )
        .keep_alive()
    }

    /// A 2026-07-28 `tools/call` of `slow`, as raw HTTP/1.1.
    fn slow_call(&self) -> Vec<u8> {
        Raw::new(self.addr, "POST", "/mcp")
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", MODERN)
            .header("mcp-method", "tools/call")
            .header("mcp-name", "slow")
            .header("authorization", &format!("Bearer {}", self.token))
            .body(modern_tool_call_body(7, "slow"))
            .to_bytes()
    }
}

/// A connection that was accepted and answered once, kept open.
async fn served_connection(server: &Running) -> TcpStream {
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let answer = server.metadata().send_on(&mut stream).await.unwrap();
    assert_eq!(answer.status, 200, "{}", answer.summary());
    stream
}

/// Sends the metadata request on a new connection; its answer, if one
/// comes within `wait`.
fn answer_within(
    server: &Running,
    wait: Duration,
) -> tokio::task::JoinHandle<Option<Result<u16, String>>> {
    let request = server.metadata();
    tokio::spawn(async move {
        tokio::time::timeout(wait, async {
            request.send().await.map(|answer| answer.status)
        })
        .await
        .ok()
    })
}

// At the limit the server stops accepting: the next connection waits in
// the listen backlog (its request unanswered), and is served as soon as
// one of the open connections closes. HTTP/1.1 keep-alive connections.
#[tokio::test]
async fn a_connection_past_the_limit_waits_until_one_closes() {
    let server = start(3, |b| b).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(served_connection(&server).await);
    }
    let waiting = answer_within(&server, Duration::from_secs(10));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !waiting.is_finished(),
        "a fourth connection was served past the limit of 3: {:?}",
        waiting.await
    );
    drop(open.pop());
    let answered = waiting.await.unwrap();
    assert_eq!(answered, Some(Ok(200)), "not served once a slot was free");
    // The open ones were not disturbed.
    for stream in &mut open {
        let answer = server.metadata().send_on(stream).await.unwrap();
        assert_eq!(answer.status, 200);
    }
}

// The same over HTTP/2 (prior knowledge): an HTTP/2 connection is one
// connection, however many streams it carries.
#[tokio::test]
async fn an_http2_connection_past_the_limit_waits_until_one_closes() {
    let server = start(2, |b| b).await;
    let uri = format!(
        "http://{}/.well-known/oauth-protected-resource/mcp",
        server.addr
    );
    let get = move |client: h2::client::SendRequest<axum::body::Bytes>| {
        let uri = uri.clone();
        async move {
            let mut client = client.ready().await.map_err(|e| e.to_string())?;
            let request = http::Request::get(uri).body(()).unwrap();
            let (response, _) = client
                .send_request(request, true)
                .map_err(|e| e.to_string())?;
            response
                .await
                .map(|r| r.status().as_u16())
                .map_err(|e| e.to_string())
        }
    };
    let mut open = Vec::new();
    for _ in 0..2 {
        let tcp = TcpStream::connect(server.addr).await.unwrap();
        let (client, connection) = h2::client::handshake(tcp).await.unwrap();
        let task = tokio::spawn(connection);
        assert_eq!(get(client.clone()).await, Ok(200));
        open.push((client, task));
    }
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let get_third = get.clone();
    let third = tokio::spawn(async move {
        let (client, connection) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(connection);
        get_third(client).await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !third.is_finished(),
        "a third HTTP/2 connection was served past the limit of 2: {:?}",
        third.await
    );
    let (client, task) = open.pop().unwrap();
    drop(client);
    task.abort();
    let answered = tokio::time::timeout(Duration::from_secs(10), third)
        .await
        .expect("not served once a slot was free")
        .unwrap();
    assert_eq!(answered, Ok(200));
}

// A connection that never sends a byte holds its slot only for the header
// read timeout (the first-byte timer), so silent connections cannot keep
// the server at its limit.
#[tokio::test]
async fn silent_connections_free_their_slots_after_the_header_read_timeout() {
    let server = start(2, |b| b.header_read_timeout(Some(Duration::from_secs(1)))).await;
    let _silent = [
        TcpStream::connect(server.addr).await.unwrap(),
        TcpStream::connect(server.addr).await.unwrap(),
    ];
    tokio::time::sleep(Duration::from_millis(200)).await;
    let waiting = answer_within(&server, Duration::from_secs(10));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "served past the limit");
    assert_eq!(waiting.await.unwrap(), Some(Ok(200)));
}

// A client that sends a slow `tools/call` over HTTP/1.1 and closes its
// connection at once leaves rmcp's handler running (rmcp spawns it; the
// handler does not watch its cancellation token). Before, 30 such
// connections one after the other left 30 handlers running at once,
// whatever the server's limits. Each now keeps its connection's slot
// until its handler ends: no more than the limit run at once, and the
// server serves again once they are done.
#[tokio::test]
async fn abandoned_http1_calls_cannot_run_more_handlers_than_the_limit() {
    let server = start(10, |b| b).await;
    let call = server.slow_call();
    for _ in 0..30 {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream.write_all(&call).await.unwrap();
        // Time for the server to take the call in, then hang up.
        tokio::time::sleep(Duration::from_millis(5)).await;
        drop(stream);
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let peak = server.count.peak();
    assert!(peak > 0, "no handler ran");
    assert!(
        peak <= 10,
        "{peak} handlers of closed connections ran at once (limit 10)"
    );
    // Once the abandoned handlers are done, honest clients are served
    // (those queued behind them run in turn: three seconds per ten).
    let answer = tokio::time::timeout(Duration::from_secs(30), server.metadata().send())
        .await
        .expect("the server did not serve again")
        .unwrap();
    assert_eq!(answer.status, 200);
    let _ = &server.resource;
}

// The limit is refused at build time when it is zero.
#[tokio::test]
async fn a_zero_limit_is_refused_at_build_time() {
    let issuer = TestIssuer::start().await.unwrap();
    let (_listener, _resource, config) = support::loopback::bind_with_config(&issuer, |b| b).await;
    let error = McpServer::builder()
        .auth(config)
        .service(|| Ok(Slow::new(&Arc::default(), Duration::from_secs(3))))
        .max_connections(0)
        .build()
        .unwrap_err();
    assert_eq!(error.field(), "max_connections");
}

/// User and system CPU time of process `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces): state is the
    // 3rd field, utime the 14th and stime the 15th.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Opens `count` connections to `addr` that send nothing.
async fn flood(addr: SocketAddr, count: usize) -> Vec<TcpStream> {
    let mut open = Vec::new();
    for _ in 0..count {
        match TcpStream::connect(addr).await {
            Ok(stream) => open.push(stream),
            Err(_) => break,
        }
    }
    open
}

/// The reference server's log lines (it logs to standard output) that
/// arrive within `wait`.
async fn lines_within(server: &mut support::reference::Reference, wait: Duration) -> Vec<String> {
    let mut lines = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Ok(Some(line))) = tokio::time::timeout_at(deadline, server.lines.next_line()).await
    {
        lines.push(line);
    }
    lines
}

// The reference server run with 64 file descriptors: its default limit
// (three quarters of them) keeps it from running out, so a flood of silent
// connections never makes `accept` fail (EMFILE), one warning says the
// limit was reached, and the server serves again once the flood closes.
#[tokio::test]
async fn the_reference_server_under_a_low_descriptor_limit_keeps_its_default() {
    let issuer = TestIssuer::start().await.unwrap();
    let port = support::reference::free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let env = [
        ("MCP_OAUTH2_ISSUER", issuer.issuer()),
        ("MCP_OAUTH2_RESOURCE", resource.as_str()),
    ];
    let mut server = support::reference::start_command(
        support::reference::command_with_fd_limit(64),
        port,
        &env,
    )
    .await;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let open = flood(addr, 120).await;
    let lines = lines_within(&mut server, Duration::from_secs(2)).await;
    let limited: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("connection limit reached"))
        .collect();
    assert_eq!(limited.len(), 1, "{lines:#?}");
    assert!(limited[0].contains("max_connections=48"), "{lines:#?}");
    assert!(
        !lines.iter().any(|l| l.contains("could not accept")),
        "the default limit let the descriptors run out: {lines:#?}"
    );
    drop(open);
    assert_served_after_the_flood(addr).await;
}

// With a limit above what its descriptors allow, the reference server's
// accepts fail (EMFILE): it pauses between attempts instead of spinning a
// core (little CPU time while the flood holds every descriptor), logs one
// warning for the whole episode instead of one per failure (before, none:
// axum's listener slept a second per failure and logged nothing), and
// serves again once the flood closes.
#[tokio::test]
async fn the_reference_server_out_of_descriptors_backs_off_and_recovers() {
    let issuer = TestIssuer::start().await.unwrap();
    let port = support::reference::free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let env = [
        ("MCP_OAUTH2_ISSUER", issuer.issuer()),
        ("MCP_OAUTH2_RESOURCE", resource.as_str()),
        ("MCP_OAUTH2_MAX_CONNECTIONS", "1000"),
    ];
    let mut server = support::reference::start_command(
        support::reference::command_with_fd_limit(64),
        port,
        &env,
    )
    .await;
    let pid = server.child.id().unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let open = flood(addr, 120).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = cpu_ticks(pid);
    let lines = lines_within(&mut server, Duration::from_secs(3)).await;
    let spent = cpu_ticks(pid) - before;
    let failures: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("could not accept"))
        .collect();
    assert_eq!(failures.len(), 1, "{lines:#?}");
    assert!(!failures[0].contains(issuer.issuer()), "{failures:?}");
    // 3 s of spinning would be about 300 ticks (at 100 Hz).
    assert!(spent < 50, "{spent} ticks of CPU in 3 s out of descriptors");
    drop(open);
    assert_served_after_the_flood(addr).await;
}

/// The reference server at `addr` serves its metadata again (within 10 s)
/// once the flood's connections are closed.
async fn assert_served_after_the_flood(addr: SocketAddr) {
    let answer = tokio::time::timeout(
        Duration::from_secs(10),
        Raw::new(addr, "GET", "/.well-known/oauth-protected-resource/mcp").send(),
    )
    .await
    .expect("not served after the flood")
    .unwrap();
    assert_eq!(answer.status, 200);
}

/// A token endpoint that answers nothing: it holds each connection until
/// its client closes it, counting those it holds and the most at once.
async fn holding_endpoint() -> (SocketAddr, Arc<Count>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(Count::default());
    let counted = Arc::clone(&count);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let entered = counted.enter();
            tokio::spawn(async move {
                let mut sink = Vec::new();
                let _ = tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut sink).await;
                drop(entered);
            });
        }
    });
    (addr, count)
}

// The reference server's slow path: `downstream_whoami` exchanges the
// caller's token at MCP_OAUTH2_TOKEN_ENDPOINT, here one that never answers
// (the exchange gives up after 5 s). Thirty callers (each its own subject,
// so no exchange is shared) send the call over HTTP/1.1 and hang up at
// once: with MCP_OAUTH2_MAX_CONNECTIONS=5, at most 5 of their handlers
// wait on the token endpoint at once (the endpoint counts its
// connections); before, every abandoned handler ran on outside the count.
#[tokio::test]
async fn the_reference_server_bounds_abandoned_calls_of_its_slow_tool() {
    let issuer = TestIssuer::start().await.unwrap();
    let (endpoint, held) = holding_endpoint().await;
    let port = support::reference::free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let token_endpoint = format!("http://{endpoint}/token");
    let env = [
        ("MCP_OAUTH2_ISSUER", issuer.issuer()),
        ("MCP_OAUTH2_RESOURCE", resource.as_str()),
        ("MCP_OAUTH2_CLIENT_ID", "mcp-server"),
        ("MCP_OAUTH2_CLIENT_SECRET", "a secret of the test"),
        ("MCP_OAUTH2_TOKEN_ENDPOINT", token_endpoint.as_str()),
        ("MCP_OAUTH2_DOWNSTREAM_AUDIENCE", "https://api.example"),
        ("MCP_OAUTH2_DOWNSTREAM_URL", "http://127.0.0.1:1/me"),
        ("MCP_OAUTH2_MAX_CONNECTIONS", "5"),
    ];
    let _server = support::reference::start(port, &env).await;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    for i in 0..30 {
        let token = issuer
            .token()
            .subject(format!("caller-{i}"))
            .audience(&resource)
            .scopes(["notes:read"])
            .sign();
        let call = Raw::new(addr, "POST", "/mcp")
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", MODERN)
            .header("mcp-method", "tools/call")
            .header("mcp-name", "downstream_whoami")
            .header("authorization", &format!("Bearer {token}"))
            .body(modern_tool_call_body(7, "downstream_whoami"))
            .to_bytes();
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(&call).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(stream);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let peak = held.peak();
    assert!(peak > 0, "no exchange reached the token endpoint");
    assert!(
        peak <= 5,
        "{peak} abandoned calls waited on the token endpoint at once (limit 5)"
    );
}
