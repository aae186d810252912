//! Introspection under an outage of its endpoint (or of the discovery of
//! it): like the key sets (`jwks_faults.rs`), a failing endpoint is not
//! asked once per new token. After a failure (connection refused, 5xx,
//! timeout) new tokens are refused at once with the documented 503
//! `introspection_unavailable` for a short cooldown; then one request
//! probes the endpoint, and a recovered endpoint is used again at once.
//! Counted by the hits on real loopback endpoints; no wall-clock asserts.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mcp_oauth2::testing::TestIssuer;
use mcp_oauth2::verify::IntrospectionSettings;
use serde_json::{Value, json};

use super::fixture::{Harness, bounded, post_bearer};
use super::{Endpoint, now, start_endpoint};

/// Tokens asked about in each outage.
const TOKENS: usize = 200;

/// Hits on the endpoint allowed for `TOKENS` new tokens during one outage:
/// the first failure, then one probe per cooldown (1 s, 2 s, 4 s, then
/// every 5 s), so 10 covers a run of 35 s on a loaded machine (the
/// requests are sent one after the other and take a few seconds in a debug
/// build). Before the cooldown, it was one hit per token (200).
const ALLOWED: usize = 10;

/// A loopback server that answers every request with `status` and counts
/// them (an introspection endpoint or an issuer's metadata in an outage).
async fn failing_server(status: u16) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    let app = axum::Router::new().fallback(move || {
        let counter = Arc::clone(&counter);
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            axum::http::StatusCode::from_u16(status).unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, hits)
}

/// A server introspecting at a fresh endpoint (`start_endpoint`) as
/// client `rs:client` with `secret`.
async fn introspecting(secret: &str) -> (Endpoint, Harness) {
    let (e, base) = start_endpoint().await;
    let issuer = TestIssuer::start().await.unwrap();
    let h = Harness::start_with_issuer(issuer, |b| {
        b.introspection(
            IntrospectionSettings::new("rs:client", secret)
                .endpoint(url::Url::parse(&format!("{base}/introspect")).unwrap()),
        )
    })
    .await;
    (e, h)
}

/// A loopback port that takes connections and never answers, with a
/// count of the connections attempted: `hold` false drops each at once (a
/// reset, as a crashed endpoint behind a proxy), true keeps it open and
/// silent (a hung endpoint).
async fn mute_server(hold: bool) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            if hold {
                held.push(socket);
            }
        }
    });
    (base, hits)
}

/// A protected server (real `McpServer`) whose introspection endpoint is
/// `endpoint`.
async fn server(endpoint: &str, timeout: Duration) -> Harness {
    let settings = IntrospectionSettings::new("rs:client", "s3cr&t")
        .endpoint(url::Url::parse(endpoint).unwrap());
    Harness::start(move |b| b.introspection(settings).http_timeout(timeout)).await
}

/// An `initialize` request (200 once admitted).
const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

/// `initialize` with `token`: the status and the body's `reason`.
async fn call(h: &Harness, token: &str) -> (u16, String) {
    let resp = bounded(h.post(&[("authorization", &format!("Bearer {token}"))], INITIALIZE)).await;
    let status = resp.status().as_u16();
    let retry_after = resp.headers().get("retry-after").cloned();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    let reason = body["reason"].as_str().unwrap_or_default().to_owned();
    if status == 503 {
        // docs/security-model.md: 503 `temporarily_unavailable`, with
        // `Retry-After` and no challenge.
        assert_eq!(body["error"], "temporarily_unavailable", "{body}");
        assert!(retry_after.is_some(), "{body}");
    }
    (status, reason)
}

/// Sends `TOKENS` distinct opaque tokens; every one must be refused with
/// the documented 503. Returns the hits the endpoint got.
async fn flood(h: &Harness, hits: &AtomicUsize, label: &str) -> usize {
    let started = std::time::Instant::now();
    for i in 0..TOKENS {
        let (status, reason) = call(h, &format!("opaque-{label}-{i}")).await;
        assert_eq!(
            (status, reason.as_str()),
            (503, "introspection_unavailable"),
            "{label}: token {i}"
        );
    }
    let n = hits.load(Ordering::SeqCst);
    // A measurement for the record, not an assertion.
    eprintln!(
        "{label}: {TOKENS} new tokens -> {n} endpoint requests, callers waited {:?} in all",
        started.elapsed()
    );
    n
}

// Connection refused (reset), 503 and a timeout: during an outage shorter
// than the cooldown, new tokens cost the endpoint one request in all (the
// one that found it down), not one each, and are answered without waiting
// for the endpoint (they never reach it).
#[tokio::test]
async fn a_failing_endpoint_is_asked_once_per_cooldown_not_once_per_token() {
    let (refusing, refused_hits) = mute_server(false).await;
    let (unavailable, unavailable_hits) = failing_server(503).await;
    let (silent, silent_hits) = mute_server(true).await;
    let cases = [
        ("refused", refusing, refused_hits),
        ("503", unavailable, unavailable_hits),
        ("timeout", silent, silent_hits),
    ];
    let mut counts = Vec::new();
    for (label, base, hits) in cases {
        let h = server(&format!("{base}/introspect"), Duration::from_millis(100)).await;
        counts.push((label, flood(&h, &hits, label).await));
    }
    for (label, n) in counts {
        assert!(
            (1..=ALLOWED).contains(&n),
            "{label}: {n} endpoint requests for {TOKENS} new tokens"
        );
    }
}

// Discovery of the endpoint (the issuer's metadata) in an outage: the
// same bound, where each new token used to cost every discovery URL.
#[tokio::test]
async fn a_failing_discovery_is_tried_once_per_cooldown_not_once_per_token() {
    use mcp_oauth2::verify::IntrospectionVerifier;
    use mcp_oauth2::{AuthConfig, AuthErrorKind, BearerToken, TokenVerifier};
    for (label, (base, hits)) in [
        ("503", failing_server(503).await),
        ("refused", mute_server(false).await),
    ] {
        let config = AuthConfig::builder()
            .issuer(format!("{base}/tenant"))
            .resource(super::RESOURCE)
            .introspection(IntrospectionSettings::new("rs:client", "s3cr&t"))
            .allow_insecure_http_for_loopback(true)
            .http_timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        let v = IntrospectionVerifier::from_config(&config).unwrap();
        for i in 0..TOKENS {
            let token = format!("opaque-{i}");
            let err = bounded(v.verify(BearerToken::new(&token)))
                .await
                .unwrap_err();
            assert_eq!(
                err.kind(),
                AuthErrorKind::IntrospectionUnavailable,
                "{label}"
            );
        }
        let n = hits.load(Ordering::SeqCst);
        eprintln!("discovery {label}: {TOKENS} new tokens -> {n} metadata requests");
        // One discovery: up to three metadata URLs for an issuer with a path.
        assert!((1..=3).contains(&n), "{label}: {n} metadata requests");
    }
}

// Recovery: after the endpoint comes back, a new token is admitted within
// the cooldown and one request (the probe); while it was down, a token
// already found active kept being served from the cache, and tokens not
// seen before were refused without a request.
#[tokio::test]
async fn a_recovered_endpoint_is_used_again_after_one_probe() {
    let (e, h) = introspecting("s3cr&t").await;
    let active =
        |sub: &str| json!({"active": true, "sub": sub, "aud": h.resource, "exp": now() + 300});
    for (token, sub) in [
        ("opaque-known", "kim"),
        ("opaque-new", "nat"),
        ("opaque-2", "ola"),
    ] {
        e.answers.lock().unwrap().insert(token.into(), active(sub));
    }
    assert_eq!(call(&h, "opaque-known").await.0, 200);
    assert_eq!(e.hits.load(Ordering::SeqCst), 1);

    // Down (502): the first new token finds it down; the next are refused
    // without a request; the cached one keeps being served. A probe goes
    // out at most once per cooldown (1 s, then doubled): on a slow machine
    // the calls may outlast one, so the bound counts the seconds taken.
    e.down.store(1, Ordering::SeqCst);
    let started = std::time::Instant::now();
    for i in 0..20 {
        let (status, reason) = call(&h, &format!("opaque-down-{i}")).await;
        assert_eq!(
            (status, reason.as_str()),
            (503, "introspection_unavailable")
        );
        assert_eq!(call(&h, "opaque-known").await.0, 200, "cached, served");
    }
    let down_hits = e.hits.load(Ordering::SeqCst) - 1;
    let cooldowns = started.elapsed().as_secs() as usize;
    assert!(
        (1..=1 + cooldowns).contains(&down_hits),
        "one request for 20 new tokens, plus at most one probe a second ({down_hits} in {cooldowns} s)"
    );

    // Back: new tokens fail fast until the cooldown ends; then one request
    // (the probe) admits the new token and closes the breaker.
    e.down.store(0, Ordering::SeqCst);
    let before = e.hits.load(Ordering::SeqCst);
    let mut admitted = false;
    for _ in 0..100 {
        match call(&h, "opaque-new").await {
            (200, _) => {
                admitted = true;
                break;
            }
            (status, reason) => assert_eq!(
                (status, reason.as_str()),
                (503, "introspection_unavailable"),
                "refused fast within the cooldown"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(admitted, "admitted once the cooldown ended");
    assert_eq!(e.hits.load(Ordering::SeqCst), before + 1, "the probe alone");
    assert_eq!(call(&h, "opaque-2").await.0, 200);
    assert_eq!(
        e.hits.load(Ordering::SeqCst),
        before + 2,
        "closed again: one per new token"
    );
}

// A probe that finds the endpoint still down opens the breaker again for
// a longer cooldown (backoff: 1 s, 2 s, 4 s, capped at 5 s).
#[tokio::test]
async fn a_failed_probe_backs_off() {
    let (e, h) = introspecting("s3cr&t").await;
    e.down.store(1, Ordering::SeqCst);
    assert_eq!(call(&h, "opaque-a").await.0, 503);
    assert_eq!(e.hits.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    // The probe: still down.
    assert_eq!(call(&h, "opaque-b").await.0, 503);
    assert_eq!(e.hits.load(Ordering::SeqCst), 2);
    // 1.1 s later the doubled cooldown (2 s) is not over: no request.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(call(&h, "opaque-c").await.0, 503);
    assert_eq!(e.hits.load(Ordering::SeqCst), 2, "still cooling down");
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    e.down.store(0, Ordering::SeqCst);
    e.answers.lock().unwrap().insert(
        "opaque-d".into(),
        json!({"active": true, "sub": "d", "aud": h.resource, "exp": now() + 300}),
    );
    assert_eq!(call(&h, "opaque-d").await.0, 200);
    assert_eq!(e.hits.load(Ordering::SeqCst), 3);
}

// An answer of the endpoint that is about this server's own configuration
// (401 `invalid_client`: wrong credentials) is not an outage: it is
// answered at once, so it opens no cooldown; every token is asked about
// (and refused with the documented 503 until the configuration is fixed).
#[tokio::test]
async fn a_client_error_of_the_endpoint_opens_no_cooldown() {
    let (e, h) = introspecting("wrong").await;
    for i in 0..5 {
        let (status, reason) = call(&h, &format!("opaque-{i}")).await;
        assert_eq!(
            (status, reason.as_str()),
            (503, "introspection_unavailable")
        );
    }
    assert_eq!(e.hits.load(Ordering::SeqCst), 5);
}

// Made-up opaque tokens, each new: without a budget every one cost the
// endpoint a request (found from outside: a flood of garbage bought
// requests to the authorization server one for one). With
// `max_lookups_per_second(5)`, at most five requests go out per second
// (counted against the seconds the flood took, no timing asserted); the
// others are the documented 503 with `Retry-After`; a token already known
// keeps being served during the flood, and after it a new real token gets
// through.
#[tokio::test]
async fn made_up_tokens_cost_the_endpoint_at_most_its_budget_a_second() {
    let (e, base) = start_endpoint().await;
    let issuer = TestIssuer::start().await.unwrap();
    let h = Harness::start_with_issuer(issuer, |b| {
        b.introspection(
            IntrospectionSettings::new("rs:client", "s3cr&t")
                .endpoint(url::Url::parse(&format!("{base}/introspect")).unwrap())
                .max_lookups_per_second(5),
        )
    })
    .await;
    let active =
        |sub: &str| json!({"active": true, "sub": sub, "aud": h.resource, "exp": now() + 300});
    e.answers
        .lock()
        .unwrap()
        .insert("opaque-known".into(), active("kim"));
    assert_eq!(call(&h, "opaque-known").await.0, 200);
    // One client for the flood (a client per request costs more than the
    // budget's second in a debug build).
    let http = reqwest::Client::new();
    let send = |token: String| {
        let (http, resource) = (&http, &h.resource);
        async move {
            let resp = post_bearer(http, resource, &token, INITIALIZE).await;
            let status = resp.status().as_u16();
            let retry_after = resp.headers().contains_key("retry-after");
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            (
                status,
                retry_after,
                body["reason"].as_str().unwrap_or_default().to_owned(),
            )
        }
    };
    let started = std::time::Instant::now();
    let before = e.hits.load(Ordering::SeqCst);
    let (mut inactive, mut refused) = (0, 0);
    for i in 0..60 {
        match send(format!("made-up-{i}")).await {
            (401, false, reason) if reason == "token_inactive" => inactive += 1,
            (503, true, reason) if reason == "introspection_unavailable" => refused += 1,
            other => panic!("made-up token {i}: {other:?}"),
        }
        assert_eq!(send("opaque-known".into()).await.0, 200, "during the flood");
    }
    // The budget's windows start at their first request, not here: a
    // flood of d seconds overlaps at most floor(d) + 2 of them.
    let windows = started.elapsed().as_secs() as usize + 2;
    let asked = e.hits.load(Ordering::SeqCst) - before;
    eprintln!("60 made-up tokens over {windows} windows: {asked} requests, {refused} refused");
    assert!(
        asked <= 5 * windows,
        "{asked} requests in {windows} windows"
    );
    assert_eq!(asked, inactive);
    // Faster than the budget (always, but on a crawling machine): some
    // tokens were refused for it.
    if 60 > 5 * windows {
        assert!(refused > 0, "no token was refused for the budget");
    }
    // The next second's budget: a real new token gets through.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    e.answers
        .lock()
        .unwrap()
        .insert("opaque-new".into(), active("nat"));
    assert_eq!(call(&h, "opaque-new").await.0, 200);
}

// An endpoint's query (an API gateway's key) is never written: the
// reference server with `MCP_OAUTH2_INTROSPECTION_URI` holding one, its
// endpoint down, logs each failure with the URL cut at `?[query]` (found
// from outside: the key was in every failure line, in our text and in the
// HTTP client's error).
#[tokio::test]
async fn an_endpoint_s_query_is_never_logged() {
    let issuer = TestIssuer::start().await.unwrap();
    let (base, _hits) = mute_server(false).await;
    let endpoint = format!("{base}/introspect?api_key=QuerySecretXYZ");
    let (server, resource) = crate::support::reference::start_trusting(
        issuer.issuer(),
        &[
            ("MCP_OAUTH2_CLIENT_ID", "rs"),
            ("MCP_OAUTH2_CLIENT_SECRET", "s3cret-value"),
            ("MCP_OAUTH2_INTROSPECTION_URI", &endpoint),
        ],
    )
    .await;
    let (mut child, lines) = server.gather();
    let http = reqwest::Client::new();
    let resp = post_bearer(&http, &resource, "opaque-token-value", INITIALIZE).await;
    assert_eq!(resp.status(), 503);
    let body = resp.text().await.unwrap();
    assert!(!body.contains("QuerySecretXYZ"), "{body}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    child.kill().await.unwrap();
    let lines = bounded(lines).await.unwrap();
    let failed: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("token introspection failed"))
        .collect();
    assert!(!failed.is_empty(), "{lines:#?}");
    assert!(failed.iter().all(|l| l.contains("?[query]")), "{failed:#?}");
    for line in &lines {
        assert!(!line.contains("QuerySecretXYZ"), "{line}");
    }
}

// A known token's renewal is not a new token: when its active result runs
// out (`cache_ttl`) while made-up tokens have spent the second's budget,
// it is asked about again all the same (found from outside: a flood
// refused every user's token once a minute, at its renewal).
#[tokio::test]
async fn a_known_token_s_renewal_is_outside_the_budget() {
    use mcp_oauth2::verify::IntrospectionVerifier;
    use mcp_oauth2::{AuthErrorKind, BearerToken, TokenVerifier};
    let (e, base) = start_endpoint().await;
    let v = IntrospectionVerifier::new(
        &super::loopback_config(&base),
        IntrospectionSettings::new("rs:client", "s3cr&t")
            .endpoint(url::Url::parse(&format!("{base}/introspect")).unwrap())
            .cache_ttl(Duration::from_secs(1))
            .max_lookups_per_second(2),
    )
    .unwrap();
    let check = |token: &'static str| {
        let v = v.clone();
        async move {
            v.verify(BearerToken::new(token))
                .await
                .map(|c| c.subject().to_owned())
                .map_err(|e| e.kind())
        }
    };
    e.answers.lock().unwrap().insert(
        "known".into(),
        json!({"active": true, "sub": "kim", "aud": super::RESOURCE, "exp": now() + 300}),
    );
    assert_eq!(check("known").await, Ok("kim".into()));
    // Its result runs out; made-up tokens spend the next second's budget.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(check("made-up-1").await, Err(AuthErrorKind::TokenInactive));
    assert_eq!(check("made-up-2").await, Err(AuthErrorKind::TokenInactive));
    assert_eq!(
        check("made-up-3").await,
        Err(AuthErrorKind::IntrospectionUnavailable),
        "the budget is spent"
    );
    // The known token is renewed all the same.
    assert_eq!(check("known").await, Ok("kim".into()));
    assert_eq!(e.hits.load(Ordering::SeqCst), 4);
}
