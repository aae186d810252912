//! A token verifier is plug-in code: the layer holds every verification to
//! its deadline (`verify_timeout`) and contains a verifier's panic, so a
//! slow or broken verifier costs its own request a precise answer (503
//! `verification_timeout`, 500 `verifier_failed`), never a hang, a dropped
//! connection or a server that stops serving. Real HTTP on loopback, through
//! `AuthLayer` in an axum app and through `McpServer` in front of rmcp.
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use mcp_oauth2::{
    AuthConfig, AuthContext, AuthError, AuthErrorKind, AuthLayer, BearerToken, TokenVerifier,
    VerifyFuture,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use support::fixture;

const ISSUER: &str = "https://issuer.example";

/// Tokens name their fate: `ok-<subject>` is accepted, `hang-<n>` never
/// decides, `panic-verify` panics inside the verification future,
/// `panic-build` panics before it returns one, `panic-cached` panics in the
/// quick check. With `cured` set every token is accepted (the same token
/// after the fault: nothing about it was remembered).
#[derive(Default)]
struct Faulty {
    cured: AtomicBool,
    calls: AtomicUsize,
}

fn accepted(subject: &str) -> AuthContext {
    AuthContext::builder(ISSUER, subject)
        .scopes(["read"])
        .build()
}

impl TokenVerifier for Faulty {
    fn verify<'a>(&'a self, token: BearerToken<'a>) -> VerifyFuture<'a> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let token = token.as_str();
        if !self.cured.load(Ordering::SeqCst) && token == "panic-build" {
            panic!("the verifier broke while building its future");
        }
        Box::pin(async move {
            if self.cured.load(Ordering::SeqCst) {
                return Ok(accepted("cured"));
            }
            if let Some(subject) = token.strip_prefix("ok-") {
                return Ok(accepted(subject));
            }
            if token.starts_with("hang-") {
                std::future::pending::<()>().await;
            }
            if token == "panic-verify" {
                tokio::task::yield_now().await;
                panic!("the verifier broke while verifying");
            }
            Err(AuthError::new(AuthErrorKind::Rejected))
        })
    }

    fn verify_cached(&self, token: BearerToken<'_>) -> Option<AuthContext> {
        if !self.cured.load(Ordering::SeqCst) && token.as_str() == "panic-cached" {
            panic!("the verifier broke in its quick check");
        }
        None
    }
}

async fn serve_layer(verifier: Arc<Faulty>, timeout: Duration) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = AuthConfig::builder()
        .issuer(ISSUER)
        .resource(format!("http://{addr}/api"))
        .required_scopes(["read"])
        .verify_timeout(timeout)
        // Two failed authentications a minute per client: the faults below
        // are the server's, and must not count against the client.
        .failed_auth_limit(2, Duration::from_secs(60))
        .allow_insecure_http_for_loopback(true)
        .build()
        .unwrap();
    let app: Router = Router::new()
        .route(
            "/api",
            get(|auth: AuthContext| async move { auth.subject().to_owned() }),
        )
        .layer(AuthLayer::with_verifier(config, verifier));
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    addr
}

async fn get_api(addr: SocketAddr, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("http://{addr}/api"))
        .header("authorization", format!("Bearer {token}"))
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .unwrap()
}

/// The status, `error`, `reason`, `Retry-After` and challenge of a refusal.
async fn refusal(resp: reqwest::Response) -> (u16, String, String, bool, bool) {
    let status = resp.status().as_u16();
    let retry_after = resp.headers().contains_key("retry-after");
    let challenge = resp.headers().contains_key("www-authenticate");
    let body: serde_json::Value = resp.json().await.unwrap();
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
        body["reason"].as_str().unwrap_or_default().to_owned(),
        retry_after,
        challenge,
    )
}

#[tokio::test]
async fn a_verifier_that_never_decides_gets_a_503_at_the_deadline() {
    let verifier = Arc::new(Faulty::default());
    let addr = serve_layer(Arc::clone(&verifier), Duration::from_millis(300)).await;

    let resp = get_api(addr, "hang-1").await;
    let (status, error, reason, retry_after, challenge) = refusal(resp).await;
    assert_eq!(status, 503);
    assert_eq!(error, "temporarily_unavailable");
    assert_eq!(reason, "verification_timeout");
    assert!(retry_after, "a 503 says when to retry");
    assert!(!challenge, "not the token's fault: no challenge");

    // Several at once: each is cut off, none waits for another. Distinct
    // tokens from one address verify at most the failure limit's number at
    // once (a verification that waits counts while in flight: a burst must
    // not get round the limit); the others are 429 at once, and nothing of
    // the server's fault is counted once they end (below: served).
    let many = futures_util::future::join_all(
        (0..8).map(|i| async move { get_api(addr, &format!("hang-{i}")).await.status() }),
    )
    .await;
    assert!(many.iter().all(|s| *s == 503 || *s == 429), "{many:?}");
    assert_eq!(many.iter().filter(|s| **s == 503).count(), 2, "{many:?}");

    // The server still answers, and the timed-out token was not
    // remembered as refused: once the verifier decides, it passes.
    let ok = get_api(addr, "ok-alice").await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "alice");
    verifier.cured.store(true, Ordering::SeqCst);
    let again = get_api(addr, "hang-1").await;
    assert_eq!(again.status(), 200);
}

#[tokio::test]
async fn a_panicking_verifier_costs_its_request_a_500_and_nothing_else() {
    let verifier = Arc::new(Faulty::default());
    let addr = serve_layer(Arc::clone(&verifier), Duration::from_secs(30)).await;

    for token in ["panic-verify", "panic-build", "panic-cached"] {
        let (status, error, reason, retry_after, challenge) =
            refusal(get_api(addr, token).await).await;
        assert_eq!(
            (status, error.as_str(), reason.as_str()),
            (500, "server_error", "verifier_failed"),
            "{token}"
        );
        assert!(
            !challenge,
            "{token}: a new token would not help, no challenge"
        );
        assert!(!retry_after, "{token}");
    }

    // The connection that carried the panic keeps serving: the refusal is
    // an answer on it, and the next request on the same socket is served.
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    for (token, want) in [
        ("panic-verify", "500"),
        ("ok-bob", "200"),
        ("panic-cached", "500"),
        ("ok-carol", "200"),
    ] {
        let head = exchange(&mut tcp, addr, token).await;
        assert!(
            head.starts_with(&format!("HTTP/1.1 {want}")),
            "{token}: {head}"
        );
    }

    // Not remembered against the token: the same token, once the verifier
    // works, passes.
    verifier.cured.store(true, Ordering::SeqCst);
    for token in ["panic-verify", "panic-build", "panic-cached"] {
        assert_eq!(get_api(addr, token).await.status(), 200, "{token}");
    }

    // The server's faults (seven above, from this one address) did not use
    // up the address's budget of failed authentications (two a minute
    // here): the client's own bad tokens still do.
    verifier.cured.store(false, Ordering::SeqCst);
    assert_eq!(get_api(addr, "ok-erin").await.status(), 200);
    assert_eq!(get_api(addr, "bad-1").await.status(), 401);
    assert_eq!(get_api(addr, "bad-2").await.status(), 401);
    assert_eq!(get_api(addr, "bad-3").await.status(), 429);
}

/// Sends one keep-alive GET on `tcp` and reads its whole answer; returns
/// the status line and headers.
async fn exchange(tcp: &mut tokio::net::TcpStream, addr: SocketAddr, token: &str) -> String {
    let request =
        format!("GET /api HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let read = async {
        loop {
            let n = tcp.read(&mut chunk).await.unwrap();
            assert!(n > 0, "the connection was closed");
            buf.extend_from_slice(&chunk[..n]);
            let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().unwrap())
                })
                .expect("a content-length");
            if buf.len() >= end + 4 + length {
                return head;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("an answer on the kept-alive connection")
}

/// The same through `McpServer`: an MCP call whose verifier hangs gets the
/// 503 at the deadline, one whose verifier panics a 500, and the server
/// goes on serving MCP calls.
#[tokio::test]
async fn mcp_server_holds_its_verifier_to_the_same_rules() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = AuthConfig::builder()
        .issuer(ISSUER)
        .resource(format!("http://{addr}/mcp"))
        .verify_timeout(Duration::from_millis(300))
        .allow_insecure_http_for_loopback(true)
        .build()
        .unwrap();
    let server = mcp_oauth2::McpServer::builder()
        .auth(config)
        .verifier(Faulty::default())
        .service(|| Ok(fixture::EchoServer::new()))
        .build()
        .unwrap();
    tokio::spawn(server.serve_with_shutdown(listener, std::future::pending()));
    let call = |token: &'static str| async move {
        reqwest::Client::new()
            .post(format!("http://{addr}/mcp"))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#)
            .timeout(Duration::from_secs(20))
            .send()
            .await
            .unwrap()
    };
    let (status, _, reason, _, _) = refusal(call("hang-mcp").await).await;
    assert_eq!((status, reason.as_str()), (503, "verification_timeout"));
    let (status, _, reason, _, _) = refusal(call("panic-verify").await).await;
    assert_eq!((status, reason.as_str()), (500, "verifier_failed"));
    let ok = call("ok-dave").await;
    assert_eq!(ok.status(), 200, "{:?}", ok.text().await);
}

#[test]
fn the_deadline_is_bounded_at_build() {
    let base = || {
        AuthConfig::builder()
            .issuer(ISSUER)
            .resource("https://mcp.example.com/mcp")
    };
    for bad in [
        Duration::ZERO,
        Duration::from_micros(999),
        Duration::from_secs(301),
    ] {
        let err = base().verify_timeout(bad).build().unwrap_err();
        assert_eq!(err.field(), "verify_timeout", "{bad:?}");
    }
    for good in [Duration::from_millis(1), Duration::from_secs(300)] {
        base().verify_timeout(good).build().unwrap();
    }
}
