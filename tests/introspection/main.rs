//! RFC 7662 introspection against a real introspection endpoint on loopback,
//! chained with the JWT verifier, inside the real layer.
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

#[path = "../support/mod.rs"]
mod support;

use support::fixture;

mod not_offered;
mod outage;
mod rules;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use fixture::{Harness, bounded, call_text, legacy_client};
use mcp_oauth2::testing::TestIssuer;
use mcp_oauth2::verify::{ClientAuthMethod, IntrospectionSettings, IntrospectionVerifier};
use mcp_oauth2::{
    AudienceRule, AuthConfig, AuthConfigBuilder, AuthErrorKind, BearerToken, TokenVerifier,
};
use serde_json::{Value, json};

/// A real introspection endpoint: answers from a table, checks client
/// authentication, counts hits, can be slowed down or switched off.
#[derive(Clone, Default)]
struct Endpoint {
    answers: Arc<Mutex<HashMap<String, Value>>>,
    hits: Arc<AtomicUsize>,
    delay_ms: Arc<AtomicUsize>,
    down: Arc<AtomicUsize>,
    issuer: Arc<Mutex<String>>,
    seen_auth: Arc<Mutex<Vec<String>>>,
    /// Answers given as raw JSON text (for shapes a `Value` cannot hold).
    raw: Arc<Mutex<HashMap<String, String>>>,
    /// A metadata document given as raw JSON text, served instead of the
    /// usual one (for shapes a `Value` cannot hold).
    raw_metadata: Arc<Mutex<Option<String>>>,
    /// Requests for the RFC 8414 metadata document.
    metadata_hits: Arc<AtomicUsize>,
    /// The OpenID Connect metadata document, when there is one (else 404).
    oidc_metadata: Arc<Mutex<Option<String>>>,
    /// When not zero, the RFC 8414 document is this status instead.
    metadata_status: Arc<AtomicUsize>,
    /// A delay before the RFC 8414 document, in milliseconds.
    metadata_delay_ms: Arc<AtomicUsize>,
    /// The key set at `/jwks`, when there is one (else 404).
    jwks: Arc<Mutex<Option<String>>>,
}

async fn introspect(
    State(e): State<Endpoint>,
    headers: HeaderMap,
    body: String,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    e.hits.fetch_add(1, Ordering::SeqCst);
    let delay = e.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay as u64)).await;
    }
    if e.down.load(Ordering::SeqCst) > 0 {
        return (axum::http::StatusCode::BAD_GATEWAY, "down").into_response();
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let authed = match (&basic, form.get("client_id"), form.get("client_secret")) {
        // "rs:client" / "s3cr&t" form-encoded then Basic: cnMlM0FjbGllbnQ6czNjciUyNnQ=
        (Some(b), None, None) => b == "Basic cnMlM0FjbGllbnQ6czNjciUyNnQ=",
        (None, Some(id), Some(secret)) => id == "rs:client" && secret == "s3cr&t",
        _ => false,
    };
    e.seen_auth
        .lock()
        .unwrap()
        .push(if basic.is_some() { "basic" } else { "post" }.into());
    if !authed {
        return (
            axum::http::StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let token = form.get("token").cloned().unwrap_or_default();
    if let Some(raw) = e.raw.lock().unwrap().get(&token).cloned() {
        return (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            raw,
        )
            .into_response();
    }
    let answer = e
        .answers
        .lock()
        .unwrap()
        .get(&token)
        .cloned()
        .unwrap_or(json!({"active": false}));
    axum::Json(answer).into_response()
}

async fn metadata(State(e): State<Endpoint>) -> axum::response::Response {
    use axum::response::IntoResponse;
    e.metadata_hits.fetch_add(1, Ordering::SeqCst);
    let delay = e.metadata_delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay as u64)).await;
    }
    let status = e.metadata_status.load(Ordering::SeqCst);
    if status > 0 {
        return axum::http::StatusCode::from_u16(status as u16)
            .unwrap()
            .into_response();
    }
    if let Some(raw) = e.raw_metadata.lock().unwrap().clone() {
        return (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            raw,
        )
            .into_response();
    }
    let iss = e.issuer.lock().unwrap().clone();
    axum::Json(
        json!({"issuer": iss, "introspection_endpoint": format!("{iss}/introspect"), "jwks_uri": format!("{iss}/jwks")}),
    )
    .into_response()
}

async fn oidc_metadata(State(e): State<Endpoint>) -> axum::response::Response {
    use axum::response::IntoResponse;
    match e.oidc_metadata.lock().unwrap().clone() {
        Some(raw) => (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            raw,
        )
            .into_response(),
        None => axum::http::StatusCode::NOT_FOUND.into_response(),
    }
}

async fn jwks(State(e): State<Endpoint>) -> axum::response::Response {
    use axum::response::IntoResponse;
    match e.jwks.lock().unwrap().clone() {
        Some(raw) => (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            raw,
        )
            .into_response(),
        None => axum::http::StatusCode::NOT_FOUND.into_response(),
    }
}

async fn start_endpoint() -> (Endpoint, String) {
    let e = Endpoint::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    *e.issuer.lock().unwrap() = base.clone();
    let app = axum::Router::new()
        .route("/introspect", post(introspect))
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/.well-known/openid-configuration", get(oidc_metadata))
        .route("/jwks", get(jwks))
        .with_state(e.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (e, base)
}

const RESOURCE: &str = "https://mcp.example.com/mcp";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The configuration of a server for `RESOURCE` trusting the issuer at
/// `base` (loopback, plain HTTP).
fn loopback_config(base: &str) -> AuthConfig {
    AuthConfig::builder()
        .issuer(base)
        .resource(RESOURCE)
        .allow_insecure_http_for_loopback(true)
        .build()
        .unwrap()
}

fn verifier(base: &str, method: ClientAuthMethod, discover: bool) -> IntrospectionVerifier {
    let config = loopback_config(base);
    let mut settings = IntrospectionSettings::new("rs:client", "s3cr&t").auth_method(method);
    if !discover {
        settings = settings.endpoint(url::Url::parse(&format!("{base}/introspect")).unwrap());
    }
    IntrospectionVerifier::new(&config, settings).unwrap()
}

async fn check(
    v: &IntrospectionVerifier,
    token: &str,
) -> Result<mcp_oauth2::AuthContext, AuthErrorKind> {
    v.verify(BearerToken::new(token))
        .await
        .map_err(|e| e.kind())
}

// RFC 7662 section 2.2 plus the audience rule.
#[tokio::test]
async fn active_inactive_expired_wrong_issuer_wrong_audience() {
    let (e, base) = start_endpoint().await;
    let exp = now() + 300;
    let table = [
        (
            "good",
            json!({"active": true, "sub": "alice", "client_id": "c1", "scope": "notes:read", "aud": RESOURCE, "iss": base, "exp": exp}),
        ),
        (
            "good-array-aud",
            json!({"active": true, "sub": "bob", "aud": ["x", RESOURCE], "exp": exp}),
        ),
        ("inactive", json!({"active": false})),
        (
            "active-string",
            json!({"active": "true", "sub": "a", "aud": RESOURCE}),
        ),
        (
            "expired",
            json!({"active": true, "sub": "a", "aud": RESOURCE, "exp": now() - 600}),
        ),
        (
            "wrong-iss",
            json!({"active": true, "sub": "a", "aud": RESOURCE, "iss": "https://evil.example"}),
        ),
        ("no-aud", json!({"active": true, "sub": "a"})),
        (
            "other-aud",
            json!({"active": true, "sub": "a", "aud": "https://other.example/mcp"}),
        ),
        (
            "prefix-aud",
            json!({"active": true, "sub": "a", "aud": "https://mcp.example.com"}),
        ),
    ];
    for (k, v) in &table {
        e.answers.lock().unwrap().insert((*k).to_owned(), v.clone());
    }
    let v = verifier(&base, ClientAuthMethod::ClientSecretBasic, false);
    let ctx = check(&v, "good").await.unwrap();
    assert_eq!(
        (ctx.subject(), ctx.client_id(), ctx.issuer()),
        ("alice", Some("c1"), base.as_str())
    );
    assert!(ctx.has_scope("notes:read"));
    assert_eq!(check(&v, "good-array-aud").await.unwrap().subject(), "bob");
    assert_eq!(
        check(&v, "inactive").await.err(),
        Some(AuthErrorKind::TokenInactive)
    );
    assert_eq!(
        check(&v, "active-string").await.err(),
        Some(AuthErrorKind::TokenInactive)
    );
    assert_eq!(
        check(&v, "expired").await.err(),
        Some(AuthErrorKind::Expired)
    );
    assert_eq!(
        check(&v, "wrong-iss").await.err(),
        Some(AuthErrorKind::InvalidIssuer)
    );
    for k in ["no-aud", "other-aud", "prefix-aud"] {
        assert_eq!(
            check(&v, k).await.err(),
            Some(AuthErrorKind::InvalidAudience),
            "{k}"
        );
    }
}

#[tokio::test]
async fn client_authentication_methods_and_discovery() {
    let (e, base) = start_endpoint().await;
    e.answers.lock().unwrap().insert(
        "t".into(),
        json!({"active": true, "sub": "a", "aud": RESOURCE}),
    );
    assert!(
        check(
            &verifier(&base, ClientAuthMethod::ClientSecretBasic, false),
            "t"
        )
        .await
        .is_ok()
    );
    assert!(
        check(
            &verifier(&base, ClientAuthMethod::ClientSecretPost, true),
            "t"
        )
        .await
        .is_ok()
    );
    assert_eq!(*e.seen_auth.lock().unwrap(), ["basic", "post"]);
}

// Cached by a hash of the token; concurrent lookups share one request;
// negative results cached too.
#[tokio::test]
async fn results_are_cached_and_lookups_shared() {
    let (e, base) = start_endpoint().await;
    e.answers.lock().unwrap().insert(
        "t".into(),
        json!({"active": true, "sub": "a", "aud": RESOURCE, "exp": now() + 300}),
    );
    e.delay_ms.store(100, Ordering::SeqCst);
    let v = verifier(&base, ClientAuthMethod::ClientSecretBasic, false);
    let results = futures_util::future::join_all((0..20).map(|_| check(&v, "t"))).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(e.hits.load(Ordering::SeqCst), 1, "single flight");
    for _ in 0..5 {
        check(&v, "t").await.unwrap();
    }
    assert_eq!(e.hits.load(Ordering::SeqCst), 1, "cached");
    for _ in 0..5 {
        assert_eq!(
            check(&v, "unknown").await.err(),
            Some(AuthErrorKind::TokenInactive)
        );
    }
    assert_eq!(e.hits.load(Ordering::SeqCst), 2, "negative result cached");
    assert!(!format!("{v:?}").contains("s3cr&t"));
}

// An entry never outlives the token's exp.
#[tokio::test]
async fn cache_never_outlives_exp() {
    let (e, base) = start_endpoint().await;
    // A few seconds ahead, so that a slow run (coverage under ptrace) still
    // finds the token valid at first; then the test waits past `exp` by the
    // clock the verifier reads, however long that takes.
    let exp = now() + 3;
    e.answers.lock().unwrap().insert(
        "t".into(),
        json!({"active": true, "sub": "a", "aud": RESOURCE, "exp": exp}),
    );
    let config = AuthConfig::builder()
        .issuer(&base)
        .resource(RESOURCE)
        .leeway(Duration::ZERO)
        .allow_insecure_http_for_loopback(true)
        .build()
        .unwrap();
    let v = IntrospectionVerifier::new(
        &config,
        IntrospectionSettings::new("rs:client", "s3cr&t")
            .endpoint(url::Url::parse(&format!("{base}/introspect")).unwrap()),
    )
    .unwrap();
    assert!(check(&v, "t").await.is_ok());
    while now() <= exp {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(check(&v, "t").await.err(), Some(AuthErrorKind::Expired));
    assert_eq!(e.hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn endpoint_failure_fails_closed_and_is_not_cached() {
    let (e, base) = start_endpoint().await;
    e.answers.lock().unwrap().insert(
        "t".into(),
        json!({"active": true, "sub": "a", "aud": RESOURCE}),
    );
    e.down.store(1, Ordering::SeqCst);
    let v = verifier(&base, ClientAuthMethod::ClientSecretBasic, false);
    assert_eq!(
        check(&v, "t").await.err(),
        Some(AuthErrorKind::IntrospectionUnavailable)
    );
    e.down.store(0, Ordering::SeqCst);
    // Within the outage cooldown (1 s, see outage.rs) the token is still
    // refused, without a request; past it, the failure was not cached.
    assert_eq!(
        check(&v, "t").await.err(),
        Some(AuthErrorKind::IntrospectionUnavailable)
    );
    assert_eq!(e.hits.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert!(check(&v, "t").await.is_ok());
    assert_eq!(e.hits.load(Ordering::SeqCst), 2);
}

// With introspection configured, opaque tokens go to introspection and JWTs
// are still verified locally (no introspection call).
#[tokio::test]
async fn jwts_stay_local_opaque_tokens_are_introspected() {
    let (e, base) = start_endpoint().await;
    let issuer = TestIssuer::start().await.unwrap();
    let h = Harness::start_with_issuer(issuer, |b| {
        b.introspection(
            IntrospectionSettings::new("rs:client", "s3cr&t")
                .endpoint(url::Url::parse(&format!("{base}/introspect")).unwrap()),
        )
    })
    .await;
    e.answers.lock().unwrap().insert(
        "opaque-token-123".into(),
        json!({"active": true, "sub": "olivia", "aud": h.resource, "client_id": "c"}),
    );
    let client = bounded(legacy_client(&h.resource, "opaque-token-123"))
        .await
        .unwrap();
    assert_eq!(
        bounded(call_text(&client, "whoami_arg")).await.unwrap(),
        "olivia"
    );
    client.cancel().await.unwrap();
    let hits = e.hits.load(Ordering::SeqCst);
    let client = bounded(legacy_client(&h.resource, &h.token("jay")))
        .await
        .unwrap();
    assert_eq!(
        bounded(call_text(&client, "whoami_arg")).await.unwrap(),
        "jay"
    );
    client.cancel().await.unwrap();
    // A forged JWT is refused locally, without an introspection call.
    let forged = h
        .issuer
        .token()
        .audience("https://elsewhere.example/mcp")
        .sign();
    let resp = h
        .post(
            &[("authorization", &format!("Bearer {forged}"))],
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
        )
        .await;
    assert_eq!(resp.status(), 401);
    // Nor does a JWT naming an unknown issuer.
    let stranger = h
        .issuer
        .token()
        .audience(&h.resource)
        .claim("iss", json!("https://stranger.example"))
        .sign();
    let resp = h
        .post(
            &[("authorization", &format!("Bearer {stranger}"))],
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
        )
        .await;
    assert_eq!(resp.status(), 401);
    assert_eq!(
        e.hits.load(Ordering::SeqCst),
        hits,
        "JWTs never reach introspection"
    );
}

// A token shaped as a JWT that the JWT verifier finds malformed (padded,
// cut, another alphabet, a part more or less, a header that is not JSON)
// keeps `malformed_token` and never reaches the introspection endpoint,
// whatever its issuer: found from outside, such a token (another
// issuer's, for another audience) was sent whole to the endpoint and
// judged by its answer. Here the endpoint would call each one active.
#[tokio::test]
async fn damaged_jwts_stay_local_and_keep_malformed_token() {
    let (e, base) = start_endpoint().await;
    let issuer = TestIssuer::start().await.unwrap();
    let h = Harness::start_with_issuer(issuer, |b| {
        b.introspection(
            IntrospectionSettings::new("rs:client", "s3cr&t")
                .endpoint(url::Url::parse(&format!("{base}/introspect")).unwrap()),
        )
    })
    .await;
    let own = h.token("jay");
    let foreign = h
        .issuer
        .token()
        .audience("https://other-api.example")
        .claim("iss", json!("https://login.other-idp.example"))
        .sign();
    let mut damaged = Vec::new();
    for token in [&own, &foreign] {
        let parts: Vec<&str> = token.split('.').collect();
        damaged.push(format!("{token}="));
        damaged.push(token[..token.len() - 1].to_owned());
        damaged.push(format!("{token}.x"));
        damaged.push(format!("{}.{}", parts[0], parts[1]));
        damaged.push(format!(
            "{}.{}.{}",
            parts[0],
            parts[1],
            parts[2].replace('-', "+").replace('_', "/")
        ));
        // A header spelled with whitespace (`{ "alg"`: not `eyJ`), damaged
        // the same ways (found from outside: still introspected).
        use base64::Engine as _;
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[0])
            .unwrap();
        let spaced = String::from_utf8(header).unwrap().replacen('{', "{ \n", 1);
        let spaced = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(spaced);
        assert!(!spaced.starts_with("eyJ"));
        damaged.push(format!("{spaced}.{}.{}=", parts[1], parts[2]));
        damaged.push(format!("{spaced}.{}", parts[1]));
        // The header damaged in transit, its claims intact (found from
        // outside in a second round: introspected).
        let cut = &parts[0][..parts[0].len() - 2];
        damaged.push(format!("{cut}.{}.{}", parts[1], parts[2]));
        damaged.push(format!("{cut}Zx.{}.{}", parts[1], parts[2]));
    }
    let opaque = "opaque-token-456";
    // Opaque tokens of two random parts (Ory Hydra's `ory_at_...`) that
    // happen to hold `eyJ` are no JWTs: introspected (found from outside:
    // refused as damaged JWTs, about one in 3,000).
    let hydra = [
        "ory_at_Qk9eyJ3xYz0aBcDeFgHiJkLmNoPqRsTuVwXyZ01234.Zm9vYmFyeyJiYXoiOjF9",
        "ory_at_AbCdEfGh.eyJpc3MiOiJ4In0AbCdEf",
    ];
    {
        let mut answers = e.answers.lock().unwrap();
        for token in damaged
            .iter()
            .map(String::as_str)
            .chain([opaque])
            .chain(hydra)
        {
            answers.insert(
                token.to_owned(),
                json!({"active": true, "sub": "mallory", "aud": h.resource, "client_id": "c"}),
            );
        }
    }
    let hits = e.hits.load(Ordering::SeqCst);
    for token in &damaged {
        let resp = h
            .post(
                &[("authorization", &format!("Bearer {token}"))],
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
            )
            .await;
        assert_eq!(resp.status(), 401, "{token}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["reason"], "malformed_token", "{token}: {body}");
    }
    assert_eq!(
        e.hits.load(Ordering::SeqCst),
        hits,
        "a damaged JWT never reaches introspection"
    );
    // Opaque tokens still do, `eyJ` in them or not.
    for (i, token) in [opaque].into_iter().chain(hydra).enumerate() {
        let client = bounded(legacy_client(&h.resource, token)).await.unwrap();
        assert_eq!(
            bounded(call_text(&client, "whoami_arg")).await.unwrap(),
            "mallory",
            "{token}"
        );
        client.cancel().await.unwrap();
        assert_eq!(e.hits.load(Ordering::SeqCst), hits + 1 + i, "{token}");
    }
}

// Verifiers compose: an ordered chain (unknown issuers pass on) and closures.
#[tokio::test]
async fn chains_and_closures() {
    use mcp_oauth2::verify::{ChainVerifier, from_fn};
    let a = TestIssuer::start().await.unwrap();
    let b = TestIssuer::start().await.unwrap();
    let cfg = |i: &TestIssuer| {
        AuthConfig::builder()
            .issuer(i.issuer())
            .resource(RESOURCE)
            .allow_insecure_http_for_loopback(true)
            .build()
            .unwrap()
    };
    let chain = ChainVerifier::new()
        .then(mcp_oauth2::JwtVerifier::new(&cfg(&a)).unwrap())
        .then(mcp_oauth2::JwtVerifier::new(&cfg(&b)).unwrap())
        .then(from_fn(|token: String| async move {
            if token == "static-dev-token" {
                Ok(mcp_oauth2::AuthContext::builder("dev", "developer").build())
            } else {
                Err(mcp_oauth2::AuthError::new(AuthErrorKind::Rejected))
            }
        }));
    let verify = |t: String| {
        let chain = chain.clone();
        async move {
            chain
                .verify(BearerToken::new(&t))
                .await
                .map(|c| c.issuer().to_owned())
                .map_err(|e| e.kind())
        }
    };
    assert_eq!(
        verify(a.token().audience(RESOURCE).sign()).await,
        Ok(a.issuer().to_owned())
    );
    assert_eq!(
        verify(b.token().audience(RESOURCE).sign()).await,
        Ok(b.issuer().to_owned())
    );
    assert_eq!(
        verify("static-dev-token".into()).await,
        Ok("dev".to_owned())
    );
    assert_eq!(verify("nope".into()).await, Err(AuthErrorKind::Rejected));
    // A final answer stops the chain: an expired token from A is not retried elsewhere.
    let expired = a
        .token()
        .audience(RESOURCE)
        .issued_at(1000)
        .expires_at(2000)
        .sign();
    assert_eq!(verify(expired).await, Err(AuthErrorKind::Expired));

    // When every link passes the token on, the last link's answer is the
    // chain's; an empty chain refuses everything.
    let jwts = ChainVerifier::new()
        .then(mcp_oauth2::JwtVerifier::new(&cfg(&a)).unwrap())
        .then(mcp_oauth2::JwtVerifier::new(&cfg(&b)).unwrap());
    assert_eq!(format!("{jwts:?}"), "ChainVerifier { links: 2 }");
    let kind = |chain: &ChainVerifier, token: &'static str| {
        let chain = chain.clone();
        async move {
            chain
                .verify(BearerToken::new(token))
                .await
                .unwrap_err()
                .kind()
        }
    };
    assert_eq!(
        kind(&jwts, "not-a-jwt").await,
        AuthErrorKind::MalformedToken
    );
    assert_eq!(
        kind(&ChainVerifier::new(), "anything").await,
        AuthErrorKind::Rejected
    );
    let closure =
        from_fn(|_: String| async { Err(mcp_oauth2::AuthError::new(AuthErrorKind::Rejected)) });
    assert_eq!(format!("{closure:?}"), "FnVerifier");
}

// The layer's counters include the verifiers behind it: the chain a
// configuration with introspection builds reports the introspection calls,
// and a cached answer costs none.
#[tokio::test]
async fn layer_metrics_count_introspection_calls_through_the_chain() {
    let (e, base) = start_endpoint().await;
    let issuer = TestIssuer::start().await.unwrap();
    let config = AuthConfig::builder()
        .issuer(issuer.issuer())
        .resource(RESOURCE)
        .introspection(
            IntrospectionSettings::new("rs:client", "s3cr&t")
                .endpoint(url::Url::parse(&format!("{base}/introspect")).unwrap()),
        )
        .allow_insecure_http_for_loopback(true)
        .build()
        .unwrap();
    e.answers.lock().unwrap().insert(
        "opaque-1".into(),
        json!({"active": true, "sub": "olivia", "aud": RESOURCE, "exp": now() + 300}),
    );
    let layer = mcp_oauth2::AuthLayer::new(config).unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("authorization", "Bearer opaque-1".parse().unwrap());
    for _ in 0..2 {
        let ctx = bounded(layer.authenticate(&headers)).await.unwrap();
        assert_eq!(ctx.subject(), "olivia");
    }
    assert_eq!(e.hits.load(Ordering::SeqCst), 1);
    assert_eq!(layer.metrics().snapshot().introspection_calls, 1);
    assert!(format!("{layer:?}").contains(RESOURCE), "{layer:?}");
}

// An issuer that accepts and never answers costs one `http_timeout` for
// the whole discovery of its introspection endpoint (three URLs for an
// issuer with a path), not one per URL: counted by the connections it
// accepts.
#[tokio::test]
async fn a_blackholed_issuer_costs_one_deadline_for_the_whole_discovery() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}/tenant", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    let blackhole = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    let config = AuthConfig::builder()
        .issuer(&issuer)
        .resource(RESOURCE)
        .introspection(IntrospectionSettings::new("rs:client", "s3cr&t"))
        .allow_insecure_http_for_loopback(true)
        .http_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let verifier = IntrospectionVerifier::from_config(&config).unwrap();
    let err = bounded(verifier.verify(BearerToken::new("opaque-1")))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), AuthErrorKind::IntrospectionUnavailable);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one discovery URL tried within the deadline"
    );
    blackhole.abort();
}

// Introspection settings that cannot work are refused when the verifier
// is built, naming the setting.
#[tokio::test]
async fn unusable_introspection_settings_are_refused_at_build_time() {
    let endpoint = url::Url::parse("http://127.0.0.1:9/introspect").unwrap();
    let plain = AuthConfig::builder()
        .issuer("http://127.0.0.1:9")
        .resource(RESOURCE)
        .allow_insecure_http_for_loopback(true)
        .build()
        .unwrap();
    let err = IntrospectionVerifier::from_config(&plain).unwrap_err();
    assert_eq!(err.field(), "introspection", "{err}");

    let err = IntrospectionVerifier::new(
        &plain,
        IntrospectionSettings::new("", "s3cr&t").endpoint(endpoint.clone()),
    )
    .unwrap_err();
    assert_eq!(err.field(), "client_id", "{err}");

    // RFC 7662 section 2.1: the resource server authenticates to the
    // endpoint. An empty secret is no authentication, and the key that
    // authenticates results shared in a store would be derived from public
    // values only (client id, resource): anyone able to write to the store
    // could plant an active answer. Refused by the verifier and the builder.
    for secret in ["", "  "] {
        let settings =
            || IntrospectionSettings::new("rs:client", secret).endpoint(endpoint.clone());
        let err = IntrospectionVerifier::new(&plain, settings()).unwrap_err();
        assert_eq!(err.field(), "client_secret", "{secret:?}: {err}");
        let builder = || {
            AuthConfig::builder()
                .issuer("http://127.0.0.1:9")
                .resource(RESOURCE)
                .allow_insecure_http_for_loopback(true)
        };
        let err = builder().introspection(settings()).build().unwrap_err();
        assert_eq!(err.field(), "introspection_client_secret", "{err}");
        let err = builder()
            .issuer_introspection("http://127.0.0.1:9", settings())
            .build()
            .unwrap_err();
        assert_eq!(err.field(), "introspection_client_secret", "{err}");
    }

    // The shared settings would discover the first issuer's endpoint, which
    // has settings of its own: ambiguous, so refused.
    let own = AuthConfig::builder()
        .issuer("http://127.0.0.1:9")
        .issuer_introspection(
            "http://127.0.0.1:9",
            IntrospectionSettings::new("rs:client", "s3cr&t").endpoint(endpoint),
        )
        .resource(RESOURCE)
        .allow_insecure_http_for_loopback(true)
        .build()
        .unwrap();
    let err = IntrospectionVerifier::new(&own, IntrospectionSettings::new("rs:client", "s3cr&t"))
        .unwrap_err();
    assert_eq!(err.field(), "introspection", "{err}");
    assert!(IntrospectionVerifier::from_config(&own).is_ok());
}

// RFC 8414 section 3.3: a discovered metadata document must name the issuer
// it was fetched for; one naming another issuer is refused, and its
// introspection endpoint is never called.
#[tokio::test]
async fn discovery_refuses_a_document_for_another_issuer() {
    let (e, base) = start_endpoint().await;
    e.answers.lock().unwrap().insert(
        "t".into(),
        json!({"active": true, "sub": "a", "aud": RESOURCE}),
    );
    *e.issuer.lock().unwrap() = "https://impostor.example".to_owned();
    let v = verifier(&base, ClientAuthMethod::ClientSecretBasic, true);
    assert_eq!(
        check(&v, "t").await.map(|c| c.subject().to_owned()),
        Err(AuthErrorKind::IntrospectionUnavailable)
    );
    assert_eq!(e.hits.load(Ordering::SeqCst), 0);
}

// RFC 8414 section 3.3, RFC 8259 section 4: a metadata document that
// repeats a member name is refused whole, as the key-set discovery does
// (readers disagree on which `introspection_endpoint` counts); the clean
// document is used.
#[tokio::test]
async fn discovery_refuses_a_document_that_repeats_a_member() {
    let (e, base) = start_endpoint().await;
    e.answers.lock().unwrap().insert(
        "t".into(),
        json!({"active": true, "sub": "a", "aud": RESOURCE}),
    );
    *e.raw_metadata.lock().unwrap() = Some(format!(
        r#"{{"issuer":"{base}","introspection_endpoint":"http://127.0.0.1:9/introspect","introspection_endpoint":"{base}/introspect"}}"#
    ));
    let v = verifier(&base, ClientAuthMethod::ClientSecretBasic, true);
    assert_eq!(
        check(&v, "t").await.map(|c| c.subject().to_owned()),
        Err(AuthErrorKind::IntrospectionUnavailable)
    );
    assert_eq!(e.hits.load(Ordering::SeqCst), 0);
    *e.raw_metadata.lock().unwrap() = Some(format!(
        r#"{{"issuer":"{base}","introspection_endpoint":"{base}/introspect"}}"#
    ));
    let v = verifier(&base, ClientAuthMethod::ClientSecretBasic, true);
    assert_eq!(check(&v, "t").await.unwrap().subject(), "a");
    assert_eq!(e.hits.load(Ordering::SeqCst), 1);
}

/// An endpoint that answers every introspection request with a redirect
/// (`status`, `Location: target`).
async fn start_redirector(status: u16, target: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(move || {
        let target = target.clone();
        async move {
            axum::response::Response::builder()
                .status(status)
                .header("location", target)
                .body(axum::body::Body::empty())
                .unwrap()
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// What a host that a redirect points at received: every request's method
/// and body, and what it answers (an active token, whatever is asked).
#[derive(Clone, Default)]
struct Elsewhere {
    seen: Arc<Mutex<Vec<String>>>,
}

async fn start_elsewhere() -> (Elsewhere, String) {
    let e = Elsewhere::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = e.clone();
    let app = axum::Router::new().fallback(
        move |method: axum::http::Method, headers: HeaderMap, body: String| {
            let seen = seen.clone();
            async move {
                let auth = headers
                    .get("authorization")
                    .map(|v| v.to_str().unwrap_or("").to_owned())
                    .unwrap_or_default();
                seen.seen
                    .lock()
                    .unwrap()
                    .push(format!("{method} auth={auth} body={body}"));
                axum::Json(json!({"active": true, "sub": "mallory", "aud": RESOURCE}))
            }
        },
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (e, base)
}

// RFC 7662 section 4 (the endpoint's answer must come from the endpoint) and
// RFC 6749 section 2.3.1 (client credentials go to the authorization server
// only): a caller's HTTP client that follows redirects must neither carry
// the token and the client secret to the host a redirect names (307/308
// re-send a POST body) nor have that host's answer taken for the endpoint's.
// Expected: 503 `introspection_unavailable`, and the other host sees no
// token, no secret.
#[tokio::test]
async fn a_redirecting_endpoint_is_refused_even_with_a_following_client() {
    for method in [
        ClientAuthMethod::ClientSecretPost,
        ClientAuthMethod::ClientSecretBasic,
    ] {
        for status in [301, 302, 303, 307, 308] {
            let (elsewhere, other) = start_elsewhere().await;
            let base = start_redirector(status, format!("{other}/introspect")).await;
            let config = AuthConfig::builder()
                .issuer(&base)
                .resource(RESOURCE)
                .allow_insecure_http_for_loopback(true)
                .build()
                .unwrap();
            let settings = IntrospectionSettings::new("rs:client", "s3cr&t")
                .auth_method(method)
                .endpoint(url::Url::parse(&format!("{base}/introspect")).unwrap());
            // reqwest's default policy follows up to ten redirects.
            let following = reqwest::Client::new();
            let v = IntrospectionVerifier::with_http_client(&config, settings, following).unwrap();
            let outcome = check(&v, "opaque-secret-token")
                .await
                .map(|c| c.subject().to_owned());
            assert_eq!(
                outcome,
                Err(AuthErrorKind::IntrospectionUnavailable),
                "{method:?} {status}"
            );
            for request in elsewhere.seen.lock().unwrap().iter() {
                assert!(
                    !request.contains("opaque-secret-token")
                        && !request.contains("s3cr")
                        && !request.contains("Basic"),
                    "{method:?} {status}: the other host received {request}"
                );
            }
        }
    }
}

// RFC 7662 section 4 / the deadline (`http_timeout`): an endpoint slower
// than the deadline is cut off with `introspection_unavailable` (503), not
// waited for, and the failure is not cached: the next request asks again
// once the outage cooldown (1 s, then 2 s; see outage.rs) is over, and is
// refused at once before.
#[tokio::test]
async fn a_slow_endpoint_is_cut_off_by_the_deadline_and_not_cached() {
    let (e, base) = start_endpoint().await;
    e.answers.lock().unwrap().insert(
        "slow".into(),
        json!({"active": true, "sub": "a", "aud": RESOURCE, "exp": now() + 300}),
    );
    e.delay_ms.store(5_000, Ordering::SeqCst);
    let config = AuthConfig::builder()
        .issuer(&base)
        .resource(RESOURCE)
        .allow_insecure_http_for_loopback(true)
        .http_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let settings = IntrospectionSettings::new("rs:client", "s3cr&t")
        .endpoint(url::Url::parse(&format!("{base}/introspect")).unwrap());
    let v = IntrospectionVerifier::new(&config, settings).unwrap();
    for round in 1..=2 {
        // Waited for, the call would answer `active` after 5 s.
        assert_eq!(
            bounded(check(&v, "slow")).await.err(),
            Some(AuthErrorKind::IntrospectionUnavailable),
            "round {round}"
        );
        assert_eq!(e.hits.load(Ordering::SeqCst), round, "round {round}");
        // In the cooldown: refused without a request.
        assert_eq!(
            bounded(check(&v, "slow")).await.err(),
            Some(AuthErrorKind::IntrospectionUnavailable),
        );
        assert_eq!(e.hits.load(Ordering::SeqCst), round, "round {round}");
        tokio::time::sleep(Duration::from_millis(1_000 * round as u64 + 100)).await;
    }
    e.delay_ms.store(0, Ordering::SeqCst);
    assert_eq!(
        check(&v, "slow").await.map(|c| c.subject().to_owned()),
        Ok("a".to_owned())
    );
}
