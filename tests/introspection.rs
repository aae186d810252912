//! RFC 7662 introspection against a real introspection endpoint on loopback,
//! chained with the JWT verifier, inside the real layer.
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

mod support;

use support::fixture;

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

async fn metadata(State(e): State<Endpoint>) -> axum::Json<Value> {
    let iss = e.issuer.lock().unwrap().clone();
    axum::Json(
        json!({"issuer": iss, "introspection_endpoint": format!("{iss}/introspect"), "jwks_uri": format!("{iss}/jwks")}),
    )
}

async fn start_endpoint() -> (Endpoint, String) {
    let e = Endpoint::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    *e.issuer.lock().unwrap() = base.clone();
    let app = axum::Router::new()
        .route("/introspect", post(introspect))
        .route("/.well-known/oauth-authorization-server", get(metadata))
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

fn verifier(base: &str, method: ClientAuthMethod, discover: bool) -> IntrospectionVerifier {
    let config = AuthConfig::builder()
        .issuer(base)
        .resource(RESOURCE)
        .allow_insecure_http_for_loopback(true)
        .build()
        .unwrap();
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
    e.answers.lock().unwrap().insert(
        "t".into(),
        json!({"active": true, "sub": "a", "aud": RESOURCE, "exp": now() + 1}),
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
    tokio::time::sleep(Duration::from_millis(2100)).await;
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
    assert!(check(&v, "t").await.is_ok());
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
}

/// Settings for the endpoint at `base` (given, not discovered).
fn settings(base: &str) -> IntrospectionSettings {
    IntrospectionSettings::new("rs:client", "s3cr&t")
        .endpoint(url::Url::parse(&format!("{base}/introspect")).unwrap())
}

/// A verifier for the endpoint at `base`, its issuer first, configured by `tweak`.
fn verifier_with(
    base: &str,
    tweak: impl FnOnce(AuthConfigBuilder) -> AuthConfigBuilder,
) -> IntrospectionVerifier {
    let config = tweak(
        AuthConfig::builder()
            .issuer(base)
            .resource(RESOURCE)
            .allow_insecure_http_for_loopback(true),
    )
    .build()
    .unwrap();
    IntrospectionVerifier::new(&config, settings(base)).unwrap()
}

fn answer(e: &Endpoint, token: &str, value: Value) {
    e.answers.lock().unwrap().insert(token.to_owned(), value);
}

// RFC 9449 section 7.2: a key-bound token (`cnf` of any kind, or
// `token_type: DPoP` in the introspection answer, any case) presented as a
// Bearer token is refused, through the real layer: 401 invalid_token with
// the reason `sender_constrained_token`.
#[tokio::test]
async fn key_bound_opaque_token_is_refused_as_bearer() {
    let (e, base) = start_endpoint().await;
    let issuer = TestIssuer::start().await.unwrap();
    let h = Harness::start_with_issuer(issuer, |b| b.introspection(settings(&base))).await;
    let fine = json!({"active": true, "sub": "a", "aud": h.resource, "token_type": "Bearer"});
    answer(&e, "plain", fine.clone());
    let bound = [
        (
            "jkt",
            json!({"cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}),
        ),
        (
            "x5t",
            json!({"cnf": {"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}}),
        ),
        ("empty-cnf", json!({"cnf": {}})),
        ("dpop", json!({"token_type": "DPoP"})),
        ("dpop-lower", json!({"token_type": "dpop"})),
    ];
    for (name, extra) in &bound {
        let mut v = fine.clone();
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        answer(&e, name, v);
    }
    let call = |token: &str| {
        let auth = format!("Bearer {token}");
        let h = &h;
        async move {
            h.post(
                &[("authorization", &auth)],
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
            )
            .await
        }
    };
    assert_ne!(call("plain").await.status(), 401);
    for (name, _) in &bound {
        let resp = call(name).await;
        assert_eq!(resp.status(), 401, "{name}");
        let challenge = resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{name}: {challenge}"
        );
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["reason"], "sender_constrained_token", "{name}");
    }
}

// `accept_audience` and the audience rule apply to introspected tokens
// exactly as to JWTs (RFC 8707; the Cognito rule).
#[tokio::test]
async fn introspection_honours_accept_audience_and_the_audience_rule() {
    let (e, base) = start_endpoint().await;
    answer(
        &e,
        "entra",
        json!({"active": true, "sub": "a", "aud": "api://mcp-app"}),
    );
    answer(
        &e,
        "other",
        json!({"active": true, "sub": "a", "aud": "api://other"}),
    );
    let v = verifier_with(&base, |b| b.accept_audience("api://mcp-app"));
    assert_eq!(check(&v, "entra").await.unwrap().subject(), "a");
    assert_eq!(
        check(&v, "other").await.err(),
        Some(AuthErrorKind::InvalidAudience)
    );
    // Without the setting, the extra audience is not ours.
    let strict = verifier_with(&base, |b| b);
    assert_eq!(
        check(&strict, "entra").await.err(),
        Some(AuthErrorKind::InvalidAudience)
    );
    // Cognito: no `aud`; `token_use: access` and a listed `client_id`.
    answer(
        &e,
        "cog-ok",
        json!({"active": true, "sub": "a", "token_use": "access", "client_id": "c1"}),
    );
    answer(
        &e,
        "cog-client",
        json!({"active": true, "sub": "a", "token_use": "access", "client_id": "c2"}),
    );
    answer(
        &e,
        "cog-id",
        json!({"active": true, "sub": "a", "token_use": "id", "client_id": "c1"}),
    );
    answer(
        &e,
        "cog-aud",
        json!({"active": true, "sub": "a", "token_use": "access", "client_id": "c1", "aud": "https://else.example"}),
    );
    let cognito = verifier_with(&base, |b| {
        b.audience_rule(AudienceRule::CognitoClientIds(vec!["c1".into()]))
    });
    assert_eq!(
        check(&cognito, "cog-ok").await.unwrap().client_id(),
        Some("c1")
    );
    assert_eq!(
        check(&cognito, "cog-client").await.err(),
        Some(AuthErrorKind::InvalidAudience)
    );
    assert_eq!(
        check(&cognito, "cog-id").await.err(),
        Some(AuthErrorKind::InvalidType)
    );
    assert_eq!(
        check(&cognito, "cog-aud").await.err(),
        Some(AuthErrorKind::InvalidAudience)
    );
    // The default rule still needs `aud`.
    assert_eq!(
        check(&strict, "cog-ok").await.err(),
        Some(AuthErrorKind::InvalidAudience)
    );
}

// `scope_claims` (and the default `scope`, else `scp`) apply to
// introspected tokens as to JWTs; a scope claim of another shape is a 401.
#[tokio::test]
async fn introspection_honours_scope_claims() {
    let (e, base) = start_endpoint().await;
    answer(
        &e,
        "perm",
        json!({"active": true, "sub": "a", "aud": RESOURCE, "scope": "basic", "permissions": ["notes:read", "notes:write"]}),
    );
    answer(
        &e,
        "scp",
        json!({"active": true, "sub": "a", "aud": RESOURCE, "scp": ["notes:read"]}),
    );
    answer(
        &e,
        "bad-scope",
        json!({"active": true, "sub": "a", "aud": RESOURCE, "scope": ["notes:read"]}),
    );
    let by_path = verifier_with(&base, |b| b.scope_claims(["permissions"]));
    let ctx = check(&by_path, "perm").await.unwrap();
    assert!(ctx.has_scope("notes:write") && !ctx.has_scope("basic"));
    let default = verifier_with(&base, |b| b);
    let ctx = check(&default, "perm").await.unwrap();
    assert!(ctx.has_scope("basic") && !ctx.has_scope("notes:write"));
    assert!(
        check(&default, "scp")
            .await
            .unwrap()
            .has_scope("notes:read")
    );
    assert_eq!(
        check(&default, "bad-scope").await.err(),
        Some(AuthErrorKind::InvalidClaims)
    );
}

// The token-lifetime cap applies to introspected tokens: by `exp - now`
// and by `exp - iat`.
#[tokio::test]
async fn introspection_honours_the_lifetime_cap() {
    let (e, base) = start_endpoint().await;
    let n = now();
    answer(
        &e,
        "ok",
        json!({"active": true, "sub": "a", "aud": RESOURCE, "iat": n - 10, "exp": n + 3000}),
    );
    answer(
        &e,
        "far",
        json!({"active": true, "sub": "a", "aud": RESOURCE, "exp": n + 7200}),
    );
    answer(
        &e,
        "long",
        json!({"active": true, "sub": "a", "aud": RESOURCE, "iat": n - 5000, "exp": n + 100}),
    );
    let v = verifier_with(&base, |b| b.max_token_lifetime(Duration::from_secs(3600)));
    assert!(check(&v, "ok").await.is_ok());
    for token in ["far", "long"] {
        assert_eq!(
            check(&v, token).await.err(),
            Some(AuthErrorKind::LifetimeTooLong),
            "{token}"
        );
    }
}

// Introspection trusts every configured issuer: an answer whose `iss` is
// the second one is accepted, and the context names it.
#[tokio::test]
async fn answer_naming_the_second_configured_issuer_is_accepted() {
    let (e, base) = start_endpoint().await;
    let second = "https://second.example";
    answer(
        &e,
        "t",
        json!({"active": true, "sub": "a", "aud": RESOURCE, "iss": second}),
    );
    answer(
        &e,
        "stranger",
        json!({"active": true, "sub": "a", "aud": RESOURCE, "iss": "https://third.example"}),
    );
    let v = verifier_with(&base, |b| b.issuer(second));
    assert_eq!(check(&v, "t").await.unwrap().issuer(), second);
    assert_eq!(
        check(&v, "stranger").await.err(),
        Some(AuthErrorKind::InvalidIssuer)
    );
}

// Settings per issuer: each issuer's endpoint is asked (discovered from
// that issuer), vouches only for its own issuer, and the first `active`
// answer decides; the shared `introspection(..)` keeps working beside them.
#[tokio::test]
async fn per_issuer_introspection_settings() {
    let (e1, base1) = start_endpoint().await;
    let (e2, base2) = start_endpoint().await;
    answer(
        &e1,
        "from-1",
        json!({"active": true, "sub": "one", "aud": RESOURCE}),
    );
    answer(
        &e2,
        "from-2",
        json!({"active": true, "sub": "two", "aud": RESOURCE}),
    );
    // Endpoint 1 vouching for a token of issuer 2: not its to vouch for.
    answer(
        &e1,
        "1-claims-2",
        json!({"active": true, "sub": "x", "aud": RESOURCE, "iss": base2}),
    );
    let config = AuthConfig::builder()
        .issuer(&base1)
        .issuer(&base2)
        .resource(RESOURCE)
        .allow_insecure_http_for_loopback(true)
        .issuer_introspection(&base1, IntrospectionSettings::new("rs:client", "s3cr&t"))
        .issuer_introspection(
            &base2,
            IntrospectionSettings::new("rs:client", "s3cr&t")
                .auth_method(ClientAuthMethod::ClientSecretPost),
        )
        .build()
        .unwrap();
    assert!(config.issuers()[1].introspection().is_some());
    let v = IntrospectionVerifier::from_config(&config).unwrap();
    let ctx = check(&v, "from-1").await.unwrap();
    assert_eq!((ctx.subject(), ctx.issuer()), ("one", base1.as_str()));
    let ctx = check(&v, "from-2").await.unwrap();
    assert_eq!((ctx.subject(), ctx.issuer()), ("two", base2.as_str()));
    assert_eq!(
        check(&v, "1-claims-2").await.err(),
        Some(AuthErrorKind::InvalidIssuer)
    );
    assert_eq!(
        check(&v, "nobody").await.err(),
        Some(AuthErrorKind::TokenInactive)
    );
    assert_eq!(*e2.seen_auth.lock().unwrap(), ["post", "post"]);
    // Unknown issuer or twice for one issuer: a configuration error.
    let build = |b: AuthConfigBuilder| {
        b.resource(RESOURCE)
            .allow_insecure_http_for_loopback(true)
            .build()
            .err()
            .map(|e| e.to_string())
    };
    let s = || IntrospectionSettings::new("rs:client", "s3cr&t");
    assert!(
        build(
            AuthConfig::builder()
                .issuer(&base1)
                .issuer_introspection("https://x.example", s())
        )
        .is_some()
    );
    assert!(
        build(
            AuthConfig::builder()
                .issuer(&base1)
                .issuer_introspection(&base1, s())
                .issuer_introspection(&base1, s())
        )
        .is_some()
    );
    // Through the real layer: the per-issuer settings alone turn introspection on.
    let issuer = TestIssuer::start().await.unwrap();
    let iss = issuer.issuer().to_owned();
    let h =
        Harness::start_with_issuer(issuer, |b| b.issuer_introspection(iss, settings(&base2))).await;
    answer(
        &e2,
        "layer",
        json!({"active": true, "sub": "lee", "aud": h.resource}),
    );
    let client = bounded(legacy_client(&h.resource, "layer")).await.unwrap();
    assert_eq!(
        bounded(call_text(&client, "whoami_arg")).await.unwrap(),
        "lee"
    );
    client.cancel().await.unwrap();
}

// An absurd `exp` from the endpoint (1e300, u64::MAX, negative, not an
// integer, not a number) is refused with a precise reason, never panics,
// and leaves no lookup behind: concurrent and later requests for that
// token get a proper answer, never 503.
#[tokio::test]
async fn absurd_exp_neither_panics_nor_leaves_the_lookup_behind() {
    let (e, base) = start_endpoint().await;
    let cases = [
        ("huge-float", json!(1e300), AuthErrorKind::InvalidClaims),
        ("u64-max", json!(u64::MAX), AuthErrorKind::LifetimeTooLong),
        ("i64-max", json!(i64::MAX), AuthErrorKind::LifetimeTooLong),
        ("negative", json!(-5), AuthErrorKind::InvalidClaims),
        ("fraction-past", json!(1.5), AuthErrorKind::Expired),
        ("string", json!("soon"), AuthErrorKind::InvalidClaims),
        ("null", json!(null), AuthErrorKind::InvalidClaims),
    ];
    let config = AuthConfig::builder()
        .issuer(&base)
        .resource(RESOURCE)
        .allow_insecure_http_for_loopback(true)
        .build()
        .unwrap();
    let v = IntrospectionVerifier::new(
        &config,
        settings(&base)
            .negative_ttl(Duration::ZERO)
            .cache_ttl(Duration::MAX),
    )
    .unwrap();
    e.delay_ms.store(50, Ordering::SeqCst);
    for (token, exp, kind) in &cases {
        answer(
            &e,
            token,
            json!({"active": true, "sub": "a", "aud": RESOURCE, "exp": exp}),
        );
        let results = futures_util::future::join_all((0..5).map(|_| check(&v, token))).await;
        for r in results {
            assert_eq!(r.err(), Some(*kind), "{token}");
        }
        // The endpoint changes its mind: the next request asks again and
        // gets the new answer (no lookup was left behind).
        answer(
            &e,
            token,
            json!({"active": true, "sub": "a", "aud": RESOURCE, "exp": now() + 60}),
        );
        assert!(check(&v, token).await.is_ok(), "{token}");
        // A TTL too large to add to the clock disables caching, no panic.
        assert!(check(&v, token).await.is_ok(), "{token}");
    }
    // The context's expiry never overflows `SystemTime` either.
    let ctx = mcp_oauth2::AuthContext::builder("i", "s")
        .expires_at_unix(u64::MAX)
        .build();
    assert!(ctx.expires_at().is_some());
}

// A lookup whose caller goes away hands over to a request waiting for the
// same token: single flight never leaves a placeholder behind.
#[tokio::test]
async fn a_cancelled_lookup_hands_over_to_a_waiting_request() {
    let (e, base) = start_endpoint().await;
    answer(
        &e,
        "t",
        json!({"active": true, "sub": "a", "aud": RESOURCE, "exp": now() + 300}),
    );
    e.delay_ms.store(1000, Ordering::SeqCst);
    let v = verifier(&base, ClientAuthMethod::ClientSecretBasic, false);
    let first = {
        let v = v.clone();
        tokio::spawn(async move { check(&v, "t").await.map(|c| c.subject().to_owned()) })
    };
    // The first request's lookup is in flight (it holds the placeholder).
    bounded(async {
        while e.hits.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let second = {
        let v = v.clone();
        tokio::spawn(async move { check(&v, "t").await.map(|c| c.subject().to_owned()) })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    first.abort();
    assert_eq!(second.await.unwrap(), Ok("a".to_owned()));
    assert_eq!(e.hits.load(Ordering::SeqCst), 2);
    assert!(check(&v, "t").await.is_ok());
    assert_eq!(e.hits.load(Ordering::SeqCst), 2, "cached");
}

// MCP "Canonical Server URI" / RFC 8707 section 2 for introspected tokens:
// scheme and host case, and a root resource's trailing slash, are
// insignificant; nothing else is.
#[tokio::test]
async fn canonical_uri_audience_in_introspection() {
    let (e, base) = start_endpoint().await;
    answer(
        &e,
        "upper",
        json!({"active": true, "sub": "a", "aud": "HTTPS://MCP.Example.COM/mcp"}),
    );
    answer(
        &e,
        "slash",
        json!({"active": true, "sub": "a", "aud": "https://mcp.example.com/mcp/"}),
    );
    answer(
        &e,
        "root-slash",
        json!({"active": true, "sub": "a", "aud": "https://mcp.example.com/"}),
    );
    answer(
        &e,
        "root",
        json!({"active": true, "sub": "a", "aud": "https://mcp.example.com"}),
    );
    let v = verifier_with(&base, |b| b);
    assert!(check(&v, "upper").await.is_ok());
    for token in ["slash", "root-slash", "root"] {
        assert_eq!(
            check(&v, token).await.err(),
            Some(AuthErrorKind::InvalidAudience),
            "{token}"
        );
    }
    let root = verifier_with(&base, |b| b.resource("https://mcp.example.com"));
    for token in ["root-slash", "root"] {
        assert!(check(&root, token).await.is_ok(), "{token}");
    }
    assert_eq!(
        check(&root, "upper").await.err(),
        Some(AuthErrorKind::InvalidAudience)
    );
}

// The answer is read with the strict reader: a repeated member name (which
// two parsers could read differently) is refused; a body that is not a
// JSON object fails closed as unavailable.
#[tokio::test]
async fn repeated_member_names_in_an_answer_are_refused() {
    let (e, base) = start_endpoint().await;
    let raw = format!(r#"{{"active":true,"sub":"a","aud":"{RESOURCE}","sub":"admin"}}"#);
    e.raw.lock().unwrap().insert("dup".into(), raw);
    e.raw.lock().unwrap().insert("array".into(), "[1]".into());
    let v = verifier(&base, ClientAuthMethod::ClientSecretBasic, false);
    assert_eq!(
        check(&v, "dup").await.err(),
        Some(AuthErrorKind::DuplicateMember)
    );
    assert_eq!(
        check(&v, "array").await.err(),
        Some(AuthErrorKind::IntrospectionUnavailable)
    );
}
