//! Event streams end when the token that opened them expires
//! (`close_streams_at_expiry`, on by default): a legacy session's GET event
//! stream stays open only while the token that opened it would still be
//! accepted, then ends, and the reconnection is verified like any request.
//! Real server, real issuer, HTTP on loopback.
// Test code: a panic here is a failed run, not an outage.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod support;

use std::time::{Duration, Instant};

use support::fixture::{Harness, now};

const LEGACY: &str = "2025-11-25";

/// A token for alice that expires `secs` from now, and its `exp`.
fn expiring_token(h: &Harness, secs: i64) -> (String, i64) {
    let exp = now() + secs;
    let token = h
        .issuer
        .token()
        .subject("alice")
        .audience(&h.resource)
        .expires_at(exp)
        .sign();
    (token, exp)
}

/// Asserts that a stream ended no earlier than `deadline` (Unix seconds):
/// the wall clock is compared with the token's own expiry, so a loaded
/// machine that is slow to open the stream cannot make a correct end look
/// early. 50 ms of slack for the timer's rounding.
fn assert_not_before(deadline: i64, lasted: Duration) {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let deadline_ms = u128::try_from(deadline).unwrap() * 1000;
    assert!(
        now_ms + 50 >= deadline_ms,
        "ended {} ms before the token expired (open for {lasted:?})",
        deadline_ms - now_ms
    );
}

/// Opens a legacy session with `token`; its id.
async fn open_session(h: &Harness, token: &str) -> String {
    let auth = format!("Bearer {token}");
    let init = h
        .post(
            &[("authorization", auth.as_str())],
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{{"protocolVersion":"{LEGACY}","capabilities":{{}},"clientInfo":{{"name":"t","version":"1"}}}}}}"#
            ),
        )
        .await;
    assert_eq!(init.status(), 200);
    let session = init.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let _ = init.bytes().await;
    let done = h
        .post(
            &[
                ("authorization", auth.as_str()),
                ("mcp-session-id", session.as_str()),
                ("mcp-protocol-version", LEGACY),
            ],
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        )
        .await;
    assert!(done.status().is_success(), "{}", done.status());
    session
}

/// The session's GET event stream, opened with `token`.
async fn open_stream(h: &Harness, token: &str, session: &str) -> reqwest::Response {
    support::attack::legacy_event_stream(&h.resource, token, session).await
}

/// Reads `stream` until it ends or `limit` passes: how long it stayed
/// open, `None` if it was still open at the limit.
async fn time_to_end(mut stream: reqwest::Response, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let read = tokio::time::timeout(limit, async {
        // An error (a reset) ends it as well as a clean end.
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    read.ok().map(|()| started.elapsed())
}

// A GET event stream opened with a token that expires in 5 s (leeway 0)
// ends then, not before; the reconnection with that token is refused 401
// `invalid_token` (RFC 6750 section 3.1), and a fresh token opens a new
// stream in the same session.
#[tokio::test]
async fn a_get_event_stream_ends_when_its_token_expires() {
    let h = Harness::start(|b| b.leeway(Duration::ZERO)).await;
    let (token, exp) = expiring_token(&h, 5);
    let session = open_session(&h, &token).await;
    let stream = open_stream(&h, &token, &session).await;
    assert_eq!(stream.status(), 200);
    assert!(
        stream.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let lasted = time_to_end(stream, Duration::from_secs(15)).await;
    let lasted = lasted.expect("the stream outlived its token by more than 10 s");
    assert_not_before(exp, lasted);
    // The token is expired now: reconnecting with it is refused.
    let again = open_stream(&h, &token, &session).await;
    assert_eq!(again.status(), 401);
    let challenge = again.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    let body: serde_json::Value = again.json().await.unwrap();
    assert_eq!(body["reason"], "token_expired");
    // A fresh token of the same principal opens the session's stream again.
    let (fresh, _) = expiring_token(&h, 600);
    let reopened = open_stream(&h, &fresh, &session).await;
    assert_eq!(reopened.status(), 200);
    assert_eq!(
        time_to_end(reopened, Duration::from_secs(2)).await,
        None,
        "a stream of a valid token stays open"
    );
}

// The leeway counts: a stream lasts until the token would be refused
// (`exp` plus the leeway), not until `exp` alone.
#[tokio::test]
async fn the_leeway_extends_a_stream_as_it_extends_the_token() {
    let h = Harness::start(|b| b.leeway(Duration::from_secs(3))).await;
    let (token, exp) = expiring_token(&h, 2);
    let session = open_session(&h, &token).await;
    let stream = open_stream(&h, &token, &session).await;
    assert_eq!(stream.status(), 200);
    let lasted = time_to_end(stream, Duration::from_secs(15))
        .await
        .expect("the stream outlived its token and the leeway");
    // Not at `exp`: at `exp` plus the 3 s leeway.
    assert_not_before(exp + 3, lasted);
}

// The opt-out: with `close_streams_at_expiry(false)` the stream outlives
// its token (the behaviour of earlier versions).
#[tokio::test]
async fn streams_outlive_their_token_when_switched_off() {
    let h = Harness::start(|b| b.leeway(Duration::ZERO).close_streams_at_expiry(false)).await;
    let (token, _) = expiring_token(&h, 4);
    let session = open_session(&h, &token).await;
    let stream = open_stream(&h, &token, &session).await;
    assert_eq!(stream.status(), 200);
    assert_eq!(time_to_end(stream, Duration::from_secs(7)).await, None);
}

// A POST answered with an event stream ends the same way: a 2026-07-28
// `subscriptions/listen` on the reference notes server, opened with a
// `notes:read` token that expires in 5 s (leeway 0), ends then; the same
// request with that token is refused 401 afterwards.
#[tokio::test]
async fn a_subscriptions_listen_stream_ends_when_its_token_expires() {
    let n = support::notes::Notes::start_with(|b| b.leeway(Duration::ZERO)).await;
    let exp = now() + 5;
    let token = n
        .issuer
        .token()
        .subject("alice")
        .audience(&n.resource)
        .scopes(["notes:read"])
        .expires_at(exp)
        .sign();
    let listen = serde_json::json!({
        "notifications": { "resourceSubscriptions": ["notes://shared/welcome"] }
    });
    let stream = n
        .post_modern(&token, "subscriptions/listen", None, listen.clone())
        .await;
    assert_eq!(stream.status(), 200);
    assert!(
        stream.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let lasted = time_to_end(stream, Duration::from_secs(15))
        .await
        .expect("the listen stream outlived its token by more than 10 s");
    assert_not_before(exp, lasted);
    let again = n
        .post_modern(&token, "subscriptions/listen", None, listen)
        .await;
    assert_eq!(again.status(), 401);
    let body: serde_json::Value = again.json().await.unwrap();
    assert_eq!(body["reason"], "token_expired");
}
