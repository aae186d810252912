//! One token policy: the same claims, signed as a JWT by a real issuer or
//! answered by a real RFC 7662 introspection endpoint (both on loopback),
//! get the same verdict and the same context. The two verifiers cannot drift
//! apart.
// Test and demo code: a panic here is a failed run, not an outage, so
// unwrap and indexing are allowed (the library itself is clean of them).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::string_slice)]

mod support;

use support::fixture;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::routing::post;
use fixture::now;
use mcp_oauth2::testing::TestIssuer;
use mcp_oauth2::verify::{IntrospectionSettings, IntrospectionVerifier};
use mcp_oauth2::{
    AuthConfig, AuthConfigBuilder, AuthContext, AuthErrorKind, BearerToken, JwtVerifier,
    TokenVerifier,
};
use serde_json::{Map, Value, json};

const RESOURCE: &str = "https://mcp.example.com/mcp";

type Answers = Arc<Mutex<HashMap<String, Value>>>;

/// An introspection endpoint answering from a table (unknown: inactive).
async fn start_endpoint() -> (Answers, String) {
    async fn introspect(State(answers): State<Answers>, body: String) -> axum::Json<Value> {
        let token = url::form_urlencoded::parse(body.as_bytes())
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        let answer = answers.lock().unwrap().get(&token).cloned();
        axum::Json(answer.unwrap_or(json!({"active": false})))
    }
    let answers = Answers::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/introspect", post(introspect))
        .with_state(answers.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (answers, base)
}

type Verdict = Result<(String, Vec<String>), AuthErrorKind>;

fn verdict(r: Result<AuthContext, mcp_oauth2::AuthError>) -> Verdict {
    r.map(|c| {
        let mut scopes: Vec<String> = c.scopes().iter().map(|s| s.to_string()).collect();
        scopes.sort();
        (c.subject().to_owned(), scopes)
    })
    .map_err(|e| e.kind())
}

/// The verdicts of both verifiers on `claims` (merged over a complete,
/// valid claims set; `null` removes a member) under the configuration
/// `tweak` makes.
async fn both(
    issuer: &TestIssuer,
    endpoint: &(Answers, String),
    tweak: impl Fn(AuthConfigBuilder) -> AuthConfigBuilder,
    claims: Value,
) -> (Verdict, Verdict) {
    let n = now();
    let mut full: Map<String, Value> = json!({
        "iss": issuer.issuer(),
        "sub": "alice",
        "aud": RESOURCE,
        "client_id": "c1",
        "iat": n - 10,
        "exp": n + 300,
        "scope": "notes:read",
    })
    .as_object()
    .unwrap()
    .clone();
    for (k, v) in claims.as_object().unwrap() {
        full.insert(k.clone(), v.clone());
    }
    let config = tweak(
        AuthConfig::builder()
            .issuer(issuer.issuer())
            .resource(RESOURCE)
            .allow_insecure_http_for_loopback(true),
    )
    .build()
    .unwrap();
    let jwt = JwtVerifier::new(&config).unwrap();
    let mut token = issuer.token();
    for (k, v) in &full {
        token = token.claim(k.clone(), v.clone());
    }
    let token = token.sign();
    let by_jwt = verdict(jwt.verify(BearerToken::new(&token)).await);

    let (answers, base) = endpoint;
    let mut answer: Map<String, Value> = full.into_iter().filter(|(_, v)| !v.is_null()).collect();
    answer.insert("active".into(), Value::Bool(true));
    let opaque = format!("opaque-{}", answers.lock().unwrap().len());
    answers
        .lock()
        .unwrap()
        .insert(opaque.clone(), Value::Object(answer));
    let introspection = IntrospectionVerifier::new(
        &config,
        IntrospectionSettings::new("rs", "secret")
            .endpoint(url::Url::parse(&format!("{base}/introspect")).unwrap()),
    )
    .unwrap();
    let by_introspection = verdict(introspection.verify(BearerToken::new(&opaque)).await);
    (by_jwt, by_introspection)
}

/// A case: its name, the configuration, the claims, the expected verdict.
type Case = (
    &'static str,
    fn(AuthConfigBuilder) -> AuthConfigBuilder,
    Value,
    Verdict,
);

fn same(b: AuthConfigBuilder) -> AuthConfigBuilder {
    b
}

// Every rule of the policy, through both verifiers: issuer, time claims,
// lifetime cap, audience (RFC 8707, canonical URI, accept_audience), `sub`,
// scope claims, key binding (RFC 9449 section 7.2).
#[tokio::test]
async fn jwt_and_introspection_apply_one_policy() {
    let issuer = TestIssuer::start().await.unwrap();
    let endpoint = start_endpoint().await;
    let n = now();
    let ok = |scopes: &[&str]| -> Verdict {
        Ok((
            "alice".to_owned(),
            scopes.iter().map(|s| (*s).to_owned()).collect(),
        ))
    };
    let cases: Vec<Case> = vec![
        ("valid", same, json!({}), ok(&["notes:read"])),
        (
            "scp array",
            same,
            json!({"scope": null, "scp": ["a", "b"]}),
            ok(&["a", "b"]),
        ),
        (
            "scope claim paths",
            |b| b.scope_claims(["realm_access.roles"]),
            json!({"realm_access": {"roles": ["r1"]}}),
            ok(&["r1"]),
        ),
        (
            "scope of the wrong shape",
            same,
            json!({"scope": ["a"]}),
            Err(AuthErrorKind::InvalidClaims),
        ),
        (
            "unknown issuer",
            same,
            json!({"iss": "https://stranger.example"}),
            Err(AuthErrorKind::InvalidIssuer),
        ),
        (
            "expired",
            same,
            json!({"exp": n - 600}),
            Err(AuthErrorKind::Expired),
        ),
        (
            "not yet valid",
            same,
            json!({"nbf": n + 600}),
            Err(AuthErrorKind::NotYetValid),
        ),
        (
            "issued in the future",
            same,
            json!({"iat": n + 600}),
            Err(AuthErrorKind::NotYetValid),
        ),
        (
            "lifetime over the cap",
            |b| b.max_token_lifetime(Duration::from_secs(3600)),
            json!({"exp": n + 7200}),
            Err(AuthErrorKind::LifetimeTooLong),
        ),
        (
            "exp u64::MAX",
            same,
            json!({"exp": u64::MAX}),
            Err(AuthErrorKind::LifetimeTooLong),
        ),
        (
            "exp 1e300",
            same,
            json!({"exp": 1e300}),
            Err(AuthErrorKind::InvalidClaims),
        ),
        (
            "exp negative",
            same,
            json!({"exp": -1}),
            Err(AuthErrorKind::InvalidClaims),
        ),
        // RFC 6749 section 3.3: no control character in a scope token
        // (found from outside: a tab joined two scopes into one).
        (
            "a scope holding a tab",
            same,
            json!({"scope": "notes:read\tnotes:write"}),
            Err(AuthErrorKind::InvalidClaims),
        ),
        // A value that is no scope token (printable ASCII but for space,
        // `"` and `\`) is left out, never granted nor shown; the token's
        // other scopes stand (found from outside: each was one scope).
        (
            "an scp element holding a space",
            same,
            json!({"scope": null, "scp": ["notes:read", "notes:read notes:write"]}),
            ok(&["notes:read"]),
        ),
        (
            "a scope holding a zero-width space",
            same,
            json!({"scope": "notes:read notes:write\u{200b}"}),
            ok(&["notes:read"]),
        ),
        (
            "a scope holding a right-to-left override",
            same,
            json!({"scope": "notes:read admin\u{202e}"}),
            ok(&["notes:read"]),
        ),
        // A role read from a claim path is no scope token: its space is
        // kept (Keycloak role names may have one).
        (
            "a role with a space",
            |b| b.scope_claims(["realm_access.roles"]),
            json!({"realm_access": {"roles": ["Note Readers"]}}),
            ok(&["Note Readers"]),
        ),
        (
            "another audience",
            same,
            json!({"aud": "https://other.example/mcp"}),
            Err(AuthErrorKind::InvalidAudience),
        ),
        (
            "audience scheme and host case",
            same,
            json!({"aud": "HTTPS://MCP.EXAMPLE.COM/mcp"}),
            ok(&["notes:read"]),
        ),
        (
            "audience path case",
            same,
            json!({"aud": "https://mcp.example.com/MCP"}),
            Err(AuthErrorKind::InvalidAudience),
        ),
        (
            "audience with a trailing slash below the root",
            same,
            json!({"aud": "https://mcp.example.com/mcp/"}),
            Err(AuthErrorKind::InvalidAudience),
        ),
        (
            "root resource, audience with its slash",
            |b| b.resource("https://mcp.example.com"),
            json!({"aud": "https://mcp.example.com/"}),
            ok(&["notes:read"]),
        ),
        (
            "accepted extra audience",
            |b| b.accept_audience("api://mcp"),
            json!({"aud": ["x", "api://mcp"]}),
            ok(&["notes:read"]),
        ),
        (
            "empty subject",
            same,
            json!({"sub": ""}),
            Err(AuthErrorKind::InvalidClaims),
        ),
        // RFC 9449 section 6: a DPoP-bound token verifies, its context bound
        // to the key (the layer then demands a proof of that key).
        (
            "cnf jkt",
            same,
            json!({"cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}),
            ok(&["notes:read"]),
        ),
        (
            "cnf x5t#S256",
            same,
            json!({"cnf": {"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}}),
            Err(AuthErrorKind::SenderConstrainedToken),
        ),
    ];
    for (name, tweak, claims, expected) in cases {
        let (by_jwt, by_introspection) = both(&issuer, &endpoint, tweak, claims).await;
        assert_eq!(by_jwt, expected, "JWT: {name}");
        assert_eq!(by_introspection, expected, "introspection: {name}");
    }
}
